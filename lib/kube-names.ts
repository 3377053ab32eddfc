/** The shapes of Kubernetes names and keys, as the API server checks them. */

/** A DNS-1123 label: a namespace name. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A DNS-1123 subdomain: the name of a ConfigMap, a Secret, a ServiceAccount. */
export const DNS1123_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A key of a ConfigMap or a Secret. */
export const DATA_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
