/**
 * The C side of the agent protocol (native/guest/protocol): frame.h builds freestanding (as the
 * probe guest needs), and the agent's JSON reader holds up against hostile input (under ASan and
 * UBSan when the compiler has them). A driver program is compiled by the test.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { packageRoot } from '../../src/native/binding.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const root = packageRoot();

function frames(inputs: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    inputs.flatMap((i) => {
      const body = typeof i === 'string' ? Buffer.from(i) : i;
      const h = Buffer.alloc(4);
      h.writeUInt32LE(body.length);
      return [h, body];
    }),
  );
}

describe('native/guest/protocol', skipUnless('guest protocol C/C++ checks', needs.command('g++'), needs.command('gcc')), () => {
  let driver: string;
  let sanitized = false;

  beforeAll(() => {
    const dir = tempDir('nodevisor-protocol-');
    driver = join(dir, 'json_driver');
    const sources = [join(root, 'native/guest/protocol/tests/json_driver.cc'), join(root, 'native/guest/protocol/json.cc')];
    const base = ['-std=c++20', '-Wall', '-Wextra', '-Werror', '-O1', '-g', '-I', join(root, 'native'), '-o', driver, ...sources];
    const asan = spawnSync('g++', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...base], { encoding: 'utf8' });
    if (asan.status === 0) sanitized = true;
    else execFileSync('g++', base);
  }, 120_000);

  function run(input: Buffer): string[] {
    const out = spawnSync(driver, [], { input, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    return out.stdout.trimEnd().split('\n');
  }

  it('frame.h compiles as freestanding C with no undefined symbols', () => {
    const obj = join(tempDir(), 'frame.o');
    execFileSync('gcc', [
      '-std=c11', '-ffreestanding', '-nostdlib', '-fno-builtin', '-Wall', '-Wextra', '-Werror', '-O2', '-c',
      '-I', join(root, 'native'), '-o', obj, join(root, 'native/guest/protocol/tests/frame_freestanding.c'),
    ]);
    const undefinedSymbols = execFileSync('nm', ['-u', obj], { encoding: 'utf8' }).trim();
    expect(undefinedSymbols).toBe('');
  });

  it('parses and re-serializes valid messages (escapes, surrogate pairs, numbers)', () => {
    const lines = run(
      frames([
        '{"id":1,"type":"ping"}',
        ' { "a" : [1, -2, 0, true, false, null, "x"] , "b":{} } ',
        '{"s":"q\\"b\\\\s\\/n\\n\\t\\u0001\\u00e9\\ud83d\\ude00"}',
        '{"big":9007199254740991,"neg":-9223372036854775808,"huge":99999999999999999999,"f":1.5e3}',
        '"é✓"',
      ]),
    );
    expect(lines).toEqual([
      'ok {"id":1,"type":"ping"}',
      'ok {"a":[1,-2,0,true,false,null,"x"],"b":{}}',
      'ok {"s":"q\\"b\\\\s/n\\n\\t\\u0001é😀"}',
      'ok {"big":9007199254740991,"neg":-9223372036854775808,"huge":"double:1e+20","f":"double:1500"}',
      'ok "é✓"',
    ]);
  });

  it('refuses hostile and malformed input with a message, never crashing', () => {
    const cases: (string | Buffer)[] = [
      '['.repeat(100_000),                       // deep nesting: bounded recursion
      `${'{"a":'.repeat(40)}1${'}'.repeat(40)}`, // just over the depth limit
      '{"a":1,"a":2}',                           // duplicate keys
      '{"a":1}x',                                // trailing data
      '{"a":"\\ud800"}',                         // lone high surrogate
      '{"a":"\\udc00"}',                         // lone low surrogate
      '{"a":"\\u12"}',                           // short escape
      '{"a":"\\x"}',                             // invalid escape
      Buffer.from([0x22, 0xc0, 0xaf, 0x22]),     // overlong UTF-8
      Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), // UTF-8-encoded surrogate
      Buffer.from([0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]), // above U+10FFFF
      '{"a":"tab\there"}',                       // raw control character
      '{"a":01}',                                // leading zero
      '{"a":-}',
      '{"a":1.}',
      '{"a":1e}',
      '{"a":tru}',
      '{"a" 1}',
      '{1:2}',
      '"unterminated',
      '[1,2',
      '{"a":1,}',
      `[${'1e999'}]`,                            // overflow to infinity
    ];
    const lines = run(frames(cases));
    expect(lines).toHaveLength(cases.length);
    for (const [i, line] of lines.entries()) expect(line, String(cases[i]).slice(0, 40)).toMatch(/^err \S/);
    expect(lines[0]).toContain('nesting deeper than 32');
    expect(lines[2]).toContain('duplicate key');
  });

  it('skips refused frame lengths and stays in sync', () => {
    const bad = Buffer.alloc(4);
    bad.writeUInt32LE(1);
    const input = Buffer.concat([bad, Buffer.from('x'), frames(['{"ok":1}'])]);
    expect(run(input)).toEqual(['frame 1 1', 'ok {"ok":1}']);
  });

  it('survives 20000 random mutations of valid messages', () => {
    const seeds = ['{"id":12,"type":"container.create","containerId":"c1","process":{"args":["sh","-c","echo \\u00e9"],"env":["A=b"],"uid":0}}'];
    let state = 0x12345678;
    const rand = (n: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const inputs: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.from(seeds[0]!);
      const edits = 1 + rand(4);
      for (let e = 0; e < edits; e++) b[rand(b.length)] = rand(256);
      inputs.push(b.subarray(0, Math.max(2, b.length - rand(3))));
    }
    const lines = run(frames(inputs));
    expect(lines).toHaveLength(inputs.length);
    expect(lines.every((l) => /^(ok|err) /.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('ok '))).toBe(true);
    expect(lines.some((l) => l.startsWith('err '))).toBe(true);
    console.log(`json driver ${sanitized ? 'with ASan+UBSan' : 'without sanitizers'}: ${lines.filter((l) => l.startsWith('ok')).length} accepted`);
  });
});
