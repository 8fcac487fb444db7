/**
 * `enterNetNs(path, fn)` (Kata B14): runs `fn` with the JS thread inside the network namespace
 * at `path`, and always switches back, also when `fn` throws.
 *
 * What is inside: everything `fn` does synchronously on the JS thread, notably child
 * processes it spawns (`spawn`, `execFileSync`: they are forked from this thread and stay
 * in the namespace for their whole life). What is not: work Node hands to other threads
 * (fs, dns.lookup, crypto on the libuv pool) and anything after `fn` returns, which is why
 * `fn` must be synchronous: the continuation of an async function would run outside.
 */
import { NodevisorError, invalid } from '../errors.js';
import { addon } from '../native/binding.js';

function isAsyncFunction(fn: Function): boolean {
  const tag = (fn as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  return tag === 'AsyncFunction' || tag === 'AsyncGeneratorFunction';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

const SYNC_ONLY =
  'enterNetNs(path, fn): fn must be synchronous; the JS thread switches back when fn returns, ' +
  'so the rest of an async function would run outside the namespace. Spawn inside, await outside: ' +
  'const child = enterNetNs(path, () => spawn(...)); await once(child, "exit")';

/**
 * Runs `fn` inside the network namespace at `path` and returns its result. An empty path runs
 * `fn` where we are (as Kata does). Errors: an async `fn` or a thenable result (EINVAL; the
 * namespace has been left by then), a path that is not a network namespace (EINVAL, "not a
 * network namespace: <path>"), or the errno of open/setns (ENOENT, EPERM, ...). A throw from
 * `fn` is rethrown unchanged.
 */
export function enterNetNs<T>(path: string, fn: () => T): T {
  if (typeof fn !== 'function') throw invalid('enterNetNs(path, fn): fn must be a function');
  if (typeof path !== 'string') throw invalid('enterNetNs(path, fn): path must be a string');
  if (isAsyncFunction(fn)) throw invalid(SYNC_ONLY);
  const result = path === '' ? fn() : addon().enterNetNs(path, fn);
  if (isThenable(result)) {
    // Its continuation would run outside the namespace. Keep its rejection, if any, from
    // becoming an unhandled rejection on top of the error thrown here.
    Promise.resolve(result).catch(() => undefined);
    throw new NodevisorError(`${SYNC_ONLY} (fn returned a promise)`, { code: 'EINVAL', path });
  }
  return result;
}
