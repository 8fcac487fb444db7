/** Kata B31: NewFactory opens a span tagged subsystem=factory; GetVM has its own. */
import { join } from 'node:path';
import { context, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CacheFactory } from '../../src/factory/cache.js';
import { buildFactory } from '../../src/factory/factory.js';
import { tempDir } from '../helpers/tmp.js';
import { DirStateFs, FakeHypervisor, type FakeVm } from './factory-fake-hypervisor.js';

describe('factory spans', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });

  it('records NewFactory and GetVM with subsystem=factory, and a failed NewFactory as an error', async () => {
    const env = { hypervisor: new FakeHypervisor(), stateFs: new DirStateFs() };
    const vmConfig = { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [] } };
    const statePath = join(tempDir('nodevisor-factory-'), 't');
    const factory = await buildFactory({ template: true, cache: 0, vmConfig, statePath }, false, env);
    const vm = await factory.getVm(vmConfig);
    await buildFactory({ template: true, cache: 1, vmConfig, statePath }, true, env).catch(() => undefined);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['NewFactory', 'GetVM', 'NewFactory']);
    expect(spans.every((s) => s.attributes.subsystem === 'factory')).toBe(true);
    expect(spans[2]!.status).toMatchObject({ code: 2, message: 'cache factory does not support fetch' });
    await vm.stop();
    await factory.close();
  });

  it('records GetVM for a hand-over from the pool too (without a tracer it takes a shorter way)', async () => {
    const hypervisor = new FakeHypervisor();
    hypervisor.guest = 'probe';
    const env = { hypervisor, stateFs: new DirStateFs() };
    const vmConfig = { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [] } };
    const statePath = join(tempDir('nodevisor-factory-'), 't');
    const factory = await buildFactory({ template: true, cache: 1, vmConfig, statePath }, false, env);
    await (factory.baseFactory as CacheFactory<FakeVm>).filled();
    exporter.reset();
    const vm = await factory.getVm(factory.config());
    expect(vm.state).toBe('running');
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['GetVM']);
    await vm.stop();
    await factory.close();
  });
});
