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
  it('is silent by default and takes the application\'s logger', () => {
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
      const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(rec).toMatchObject({ subsystem: 'hooks', sandbox: 's1', container: 'c1', n: 1, msg: 'hello' });
    } finally {
      setLogger(before);
    }
  });
});
