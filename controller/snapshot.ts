/**
 * What the controller knows of the cluster in one cycle, read with a constant number of kubectl
 * calls whatever the number of ExternalServices. genrule is a pure function of (conf, snapshot).
 */

export interface PodInfo {
  namespace: string;
  name: string;
  /** status.podIP; undefined while the pod has none (kubectl's `<none>`). */
  podIP: string | undefined;
  labels: Record<string, string>;
}

export interface ServicePortInfo {
  name: string | undefined;
  protocol: string;
  port: number;
  targetPort: number | string | undefined;
}

export interface ServiceInfo {
  namespace: string;
  name: string;
  /** ClusterIP, NodePort, LoadBalancer or ExternalName. */
  type: string;
  /** spec.clusterIP; undefined when absent, "None" for headless services. */
  clusterIP: string | undefined;
  ports: ServicePortInfo[];
  selector: Record<string, string>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface EndpointsInfo {
  namespace: string;
  name: string;
  /** subsets[*].addresses[*].ip (ready addresses only, not notReadyAddresses). */
  readyIPs: string[];
}

export interface ClusterSnapshot {
  /** Pods of the forwarder namespace. */
  pods: PodInfo[];
  /** Services of all namespaces. */
  services: ServiceInfo[];
  /** Endpoints of all namespaces. */
  endpoints: EndpointsInfo[];
}
