/**
 * Container and sandbox ids. They become path components (mapping directories, netns names,
 * state directories), so they are checked when they enter nodevisor: no id can name a parent
 * directory, contain a slash, or start with a dot.
 */
import { invalid } from '../errors.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Longer ids would not fit in a file name (NAME_MAX 255) with a prefix or suffix. */
const ID_MAX_LENGTH = 200;

/** Returns `id` when it is valid; else throws an EINVAL error naming `what` and the id. */
export function validateId(id: unknown, what = 'container ID'): string {
  if (id === undefined || id === null || id === '') {
    throw invalid(`Missing ${what}`);
  }
  if (typeof id !== 'string') throw invalid(`${what} must be a string, not ${typeof id}`);
  if (id.length > ID_MAX_LENGTH) {
    throw invalid(`invalid ${what} ${JSON.stringify(id.slice(0, 40))}...: longer than ${ID_MAX_LENGTH} characters`);
  }
  if (!ID_PATTERN.test(id)) {
    throw invalid(`invalid ${what} ${JSON.stringify(id)}: it must match ${ID_PATTERN.source}`);
  }
  return id;
}
