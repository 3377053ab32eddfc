import { afterEach, describe, expect, it } from 'vitest';
import { CommandError, displayCommand } from '../../../lib/errors.js';
import { debugOutput, mutate, run, streamLines } from '../../../lib/exec.js';

const originalDebug = process.env.DEBUG;
afterEach(() => {
  if (originalDebug === undefined) delete process.env.DEBUG;
  else process.env.DEBUG = originalDebug;
});

describe('run', () => {
  it('returns stdout, stderr and the exit code of a program called with an argv array', async () => {
    const result = await run(process.execPath, ['-e', 'process.stdout.write("out"); process.stderr.write("err")']);
    expect(result).toMatchObject({ stdout: 'out', stderr: 'err', exitCode: 0, ok: true, printed: false });
  });

  it('passes arguments verbatim, without a shell', async () => {
    const tricky = '$(echo hacked) "quoted" ; rm -rf /';
    const result = await run(process.execPath, ['-e', 'process.stdout.write(process.argv[1])', tricky]);
    expect(result.stdout).toBe(tricky);
  });

  it('throws a CommandError carrying the command, exit code and first stderr lines', async () => {
    const error = await run(process.execPath, ['-e', 'console.error("boom"); process.exit(3)']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    const failure = error as CommandError;
    expect(failure.exitCode).toBe(3);
    expect(failure.shortMessage).toMatch(/^Command failed with exit code 3: /);
    expect(failure.message).toContain('boom');
  });

  it('returns a failed result instead of throwing with reject: false', async () => {
    const result = await run(process.execPath, ['-e', 'process.exit(1)'], { reject: false });
    expect(result).toMatchObject({ ok: false, exitCode: 1 });
  });

  it('names a program that is not on PATH', async () => {
    await expect(run('k8s-ext-no-such-program', [])).rejects.toThrow('Command not found: k8s-ext-no-such-program');
  });

  it('kills a program that runs past its timeout', async () => {
    await expect(run(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200 })).rejects.toThrow('timed out');
  });

  it('feeds input on stdin', async () => {
    const result = await run(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], { input: 'rules\n' });
    expect(result.stdout).toBe('rules\n');
  });
});

describe('mutate', () => {
  it('runs the command when DEBUG is not true', async () => {
    delete process.env.DEBUG;
    const result = await mutate(process.execPath, ['-e', 'process.stdout.write("ran")']);
    expect(result).toMatchObject({ stdout: 'ran', printed: false });
  });

  it('prints the command and its stdin instead of running it under DEBUG=true', async () => {
    process.env.DEBUG = 'true';
    const printed: string[] = [];
    const write = debugOutput.write;
    debugOutput.write = (text) => printed.push(text);
    try {
      const result = await mutate('iptables-restore', ['--wait'], { input: '*nat\nCOMMIT' });
      expect(result).toMatchObject({ printed: true, ok: true });
      expect(printed.join('')).toBe('iptables-restore --wait\n*nat\nCOMMIT\n');
    } finally {
      debugOutput.write = write;
    }
  });
});

describe('displayCommand', () => {
  it('quotes only the arguments that need it', () => {
    expect(displayCommand(['kubectl', 'get', 'pod', "it's here", 'a b'])).toBe("kubectl get pod 'it'\\''s here' 'a b'");
  });
});

describe('streamLines', () => {
  it('hands over each line of stdout as it comes and resolves with the exit code and stderr', async () => {
    const lines: string[] = [];
    const result = await streamLines(process.execPath, ['-e', 'console.log("one"); console.log("two"); console.error("why"); process.exit(3)'], {
      signal: new AbortController().signal,
      onLine: (line) => lines.push(line),
    });
    expect(lines).toEqual(['one', 'two']);
    expect(result).toMatchObject({ ok: false, exitCode: 3, stderr: 'why' });
  });

  it('ends the program when the signal aborts', async () => {
    const controller = new AbortController();
    const lines: string[] = [];
    const result = await streamLines(process.execPath, ['-e', 'console.log("ready"); setInterval(() => undefined, 1000)'], {
      signal: controller.signal,
      onLine: (line) => {
        lines.push(line);
        controller.abort();
      },
    });
    expect(lines).toEqual(['ready']);
    expect(result.ok).toBe(false);
  });

  it('names a program that is not on PATH', async () => {
    const result = await streamLines('k8s-ext-no-such-program', [], { signal: new AbortController().signal, onLine: () => undefined });
    expect(result.stderr).toBe('k8s-ext-no-such-program: not found on PATH');
  });
});
