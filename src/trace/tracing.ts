/**
 * Tracing through @opentelemetry/api. Spans are named as Kata names them (`createSandbox`,
 * `createContainer`, `hook`, `addContainerIDMapping`, ...). Without a registered tracer
 * provider the API hands out no-op spans, so this costs nothing unless the user opts in.
 */
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

const TRACER_NAME = 'nodevisor';

function tracer() {
  // Looked up per call: a provider registered after import must still take effect.
  return trace.getTracer(TRACER_NAME);
}

/** Marks `span` as failed with `err`. */
function recordFailure(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** Runs `fn` inside an active span; records an exception and an error status when it throws. */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
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
