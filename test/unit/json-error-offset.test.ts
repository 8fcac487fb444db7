import { describe, expect, it } from 'vitest';

import { jsonErrorOffset } from '../../src/util/json-error-offset.js';

describe('jsonErrorOffset', () => {
  it.each([
    '{}',
    '[]',
    ' {"a": [1, -2.5e+3, true, false, null, "x\\u00e9\\n"]} ',
    '"s"',
    '0',
  ])('finds nothing wrong in %j', (text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(jsonErrorOffset(text)).toBe(-1);
  });

  it.each([
    ['{"a": }', 6],
    ['{"a": 1,}', 8],
    ['[1 2]', 3],
    ['{"a" 1}', 5],
    ['', 0],
    ['{"a": [1,', 9],
    ['"abc', 4],
    ['01', 1],
    ['{"a": tru}', 9],
    ['"\\x"', 2],
    ['{} x', 3],
  ])('finds the error in %j at %i', (text, at) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(jsonErrorOffset(text)).toBe(at);
  });
});
