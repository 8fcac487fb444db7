/**
 * withSpan without and with a tracer provider: without one, no span is made (it would be a
 * no-op) and `fn` runs with a span that records nothing; a provider registered afterwards is
 * used from the next call on.
 */
import { context, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';

import { withSpan } from '../../src/trace/tracing.js';

describe('withSpan', () => {
  afterAll(() => {
    trace.disable();
    context.disable();
  });

  it('without a tracer provider runs fn with a non-recording span, passing results and errors through', async () => {
    expect(await withSpan('quiet', { subsystem: 'test' }, (span) => (span.isRecording() ? 'recording' : 'not recording'))).toBe('not recording');
    await expect(withSpan('quiet', {}, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('records spans, failures included, once a provider is registered', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    expect(await withSpan('loud', { subsystem: 'test' }, (span) => span.isRecording())).toBe(true);
    await expect(withSpan('failing', {}, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['loud', 'failing']);
    expect(spans[0]!.attributes).toEqual({ subsystem: 'test' });
    expect(spans[1]!.status).toMatchObject({ code: 2, message: 'boom' });
  });
});
