import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { context, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runHook } from '../../src/hooks/run-hook.js';
import { logger, rootLogger, setLogger } from '../../src/log/logger.js';
import { ContainerIdMapping } from '../../src/mapping/container-id-mapping.js';
import { tempDir } from '../helpers/tmp.js';

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });

  it('records Kata-named spans, with the error of a failed hook', async () => {
    const dir = tempDir();
    const hook = join(dir, 'fail.sh');
    writeFileSync(hook, '#!/bin/sh\nexit 2\n');
    chmodSync(hook, 0o755);
    await runHook({ path: hook, args: ['fail.sh', 'x'] }, { ociVersion: '1', id: 'c', status: 'creating', bundle: '/b' }).catch(() => {});
    await new ContainerIdMapping(dir).add('c1', 's1');
    await new ContainerIdMapping(dir).delete('c1');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['hook', 'addContainerIDMapping', 'delContainerIDMapping']);
    expect(spans[0]!.attributes['hook.path']).toBe(hook);
    expect(spans[0]!.attributes['hook.args']).toBe('fail.sh x');
    expect(spans[0]!.status.code).toBe(2); // ERROR
    expect(spans[1]!.attributes).toMatchObject({ container: 'c1', sandbox: 's1' });
  });
});

describe('logger', () => {
  /** Runs `code` in a fresh Node process that imports the built logger module (dist/). */
  function inChild(code: string, env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
    const module = join(import.meta.dirname, '..', '..', 'dist', 'src', 'log', 'logger.js');
    const program = `const { logger, rootLogger } = await import(${JSON.stringify(module)});\n${code}`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', program], { env, encoding: 'utf8' });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  }

  it('writes nothing by default, at any level, and writes JSON lines to stderr with NODEVISOR_LOG_LEVEL', () => {
    const { NODEVISOR_LOG_LEVEL: _unset, ...env } = process.env;
    const logEverything = `
      for (const sub of ['hooks', 'vmm', 'agent']) {
        const l = logger(sub, { sandbox: 's1' });
        for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) l[level]({ n: 1 }, 'hello ' + level);
      }
      rootLogger().fatal('root');`;
    const silent = inChild(logEverything, env);
    expect(silent.status, silent.stderr).toBe(0);
    expect(silent.stdout).toBe('');
    expect(silent.stderr).toBe('');
    // The same program with the variable set does write: the silence above is the default's.
    const loud = inChild(logEverything, { ...env, NODEVISOR_LOG_LEVEL: 'warn' });
    expect(loud.status, loud.stderr).toBe(0);
    expect(loud.stdout).toBe('');
    const lines = loud.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3 * 3 + 1); // warn, error, fatal per subsystem, and the root's
    // pino's destination may write fatal lines ahead of the others: compare as sets.
    expect(lines.map((l) => `${String(l.subsystem)} ${String(l.msg)}`).sort()).toEqual(
      ['agent', 'hooks', 'vmm'].flatMap((sub) => ['error', 'fatal', 'warn'].map((level) => `${sub} hello ${level}`)).concat('undefined root').sort(),
    );
    // Order is not guaranteed (above), so pick the hooks line by its subsystem.
    expect(lines.find((l) => l.msg === 'hello warn' && l.subsystem === 'hooks')).toMatchObject({ name: 'nodevisor', sandbox: 's1' });
  });

  it("takes the application's logger", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const before = rootLogger();
    try {
      setLogger(pino({ level: 'debug' }, sink));
      logger('hooks', { sandbox: 's1', container: 'c1' }).info({ n: 1 }, 'hello');
      expect(lines).toHaveLength(1);
      const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(rec).toMatchObject({ subsystem: 'hooks', sandbox: 's1', container: 'c1', n: 1, msg: 'hello' });
    } finally {
      setLogger(before);
    }
  });
});
