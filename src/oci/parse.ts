/**
 * Reading a bundle's config.json (Kata's ParseConfigJSON), with errors that say what is
 * wrong and where: the file cannot be read; the JSON is invalid at line L, column C; a
 * section or field is missing or mistyped. Capabilities in the legacy array form are
 * converted to the object form.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { NodevisorError, errorCode, invalid } from '../errors.js';
import { normalizeCapabilities } from './capabilities.js';
import { jsonErrorOffset } from '../util/json-error-offset.js';
import type { ValidSpec } from './spec.js';
import { validateSpec } from './validate.js';

const CONFIG_FILE = 'config.json';

/** 1-based line and column of a character offset in `text`. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const clamped = Math.max(0, Math.min(offset, text.length));
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < clamped; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: clamped - lineStart + 1 };
}

/** Parses JSON text; a syntax error names `source` and the line and column. */
function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const offset = jsonErrorOffset(text);
    const { line, column } = lineAndColumn(text, offset < 0 ? text.length : offset);
    throw invalid(`${source}: invalid JSON at line ${line}, column ${column}: ${err.message}`, err);
  }
}

/** Reads and checks `<bundlePath>/config.json`. */
export async function parseConfigJson(bundlePath: string): Promise<ValidSpec> {
  if (typeof bundlePath !== 'string' || bundlePath === '') throw invalid('bundle path must be specified');
  const file = join(resolve(bundlePath), CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new NodevisorError(`cannot read ${file}: ${(err as Error).message}`, {
      code: errorCode(err) ?? 'EIO',
      path: file,
      cause: err,
    });
  }
  const spec = validateSpec(parseJsonText(text, file), file);
  return { ...spec, process: { ...spec.process, capabilities: normalizeCapabilities(spec.process.capabilities) } };
}
