/**
 * Tracing through @opentelemetry/api. Spans are named as Kata names them (`createSandbox`,
 * `createContainer`, `hook`, `addContainerIDMapping`, ...). Without a registered tracer
 * provider the API hands out no-op spans; `withSpan` then does not make one at all (measured:
 * ~30 µs per call here, on the VM hand-over path whose target is 100 µs).
 */
import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';

const TRACER_NAME = 'nodevisor';

/** What the API's proxy delegates to while no provider is registered (a no-op provider). */
const NO_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * The tracer spans go to, or undefined while no tracer provider is registered. Looked up per
 * call (a provider registered after import must still take effect), without making a tracer
 * object when there is none: this runs on every VM hand-over.
 */
function recordingTracer(): Tracer | undefined {
  return tracing() ? trace.getTracerProvider().getTracer(TRACER_NAME) : undefined;
}

/**
 * Whether a tracer provider is registered, so `withSpan` would record a span. A caller on a
 * hot path may skip `withSpan` (and the async function it wraps) when this is false.
 */
export function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider && provider.getDelegate() === NO_PROVIDER);
}

/** What `fn` gets when no tracer provider is registered: records nothing, as the API's own. */
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Marks `span` as failed with `err`. */
function recordFailure(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** Runs `fn` inside an active span; records an exception and an error status when it throws. */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T> | T): Promise<T> {
  const active = recordingTracer();
  // `fn`'s own promise is returned as it is: wrapping it (an async function returning it)
  // would cost the caller extra turns of the microtask queue on every VM hand-over.
  if (!active) {
    try {
      return Promise.resolve(fn(NOT_RECORDING));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return active.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}
