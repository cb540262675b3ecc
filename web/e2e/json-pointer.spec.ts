// Unit tests of the JSON pointer → text range function the import dialog marks diagnostics with (no browser).
import { expect, test } from '@playwright/test';
import { lineColumnOffset, pointerRange, pointerTokens } from '../src/lib/jsonPointer';

const at = (text: string, pointer: string) => {
  const r = pointerRange(text, pointer);
  return r ? text.slice(r.from, r.to) : null;
};

test('pointer tokens unescape ~1 and ~0 in that order', () => {
  expect(pointerTokens('')).toEqual([]);
  expect(pointerTokens('/a~1b/~01/0')).toEqual(['a/b', '~1', '0']);
  expect(pointerTokens('no-slash')).toBeNull();
});

test('a member is marked with its key, an array element by index, the root whole', () => {
  const text = '{\n  "a": {"b": [10, {"c": "x\\"y"}, true]},\n  "d": null\n}';
  expect(at(text, '/a/b/1/c')).toBe('"c": "x\\"y"');
  expect(at(text, '/a/b/0')).toBe('10');
  expect(at(text, '/a/b/2')).toBe('true');
  expect(at(text, '/d')).toBe('"d": null');
  expect(at(text, '')).toBe(text);
});

test('keys with slashes, tildes and escapes are found; same-prefix keys are not confused', () => {
  const text = '{"a/b": 1, "m~n": 2, "é\\u0041": 3, "ab": 4, "a": 5}';
  expect(at(text, '/a~1b')).toBe('"a/b": 1');
  expect(at(text, '/m~0n')).toBe('"m~n": 2');
  expect(at(text, '/éA')).toBe('"é\\u0041": 3');
  expect(at(text, '/a')).toBe('"a": 5');
});

test('an absent member lands on the closest parent that exists', () => {
  const text = '{"nodes": {"x": {"type": "sequence"}}}';
  expect(at(text, '/nodes/x/next_node')).toBe('"x": {"type": "sequence"}');
  expect(at(text, '/nodes/y')).toBe('"nodes": {"x": {"type": "sequence"}}');
  expect(at(text, '/nodes/x/type/deeper')).toBe('"type": "sequence"');
  expect(at('[1, 2]', '/5')).toBe('[1, 2]');
  expect(at('[1, 2]', '/01')).toBe('[1, 2]');
});

test('text that is not JSON on the way answers null, text after the target does not matter', () => {
  expect(pointerRange('{"a": tru', '/a')).toBeNull();
  expect(pointerRange('{"a" 1}', '/a')).toBeNull();
  expect(at('{"a": 1, "b": oops', '/a')).toBe('"a": 1');
  expect(pointerRange('{}', 'bad')).toBeNull();
});

test('line and column become an offset, clamped to the text', () => {
  const text = 'ab\ncde\nf';
  expect(lineColumnOffset(text, 1, 1)).toBe(0);
  expect(lineColumnOffset(text, 2, 2)).toBe(4);
  expect(text[lineColumnOffset(text, 3, 1)]).toBe('f');
  expect(lineColumnOffset(text, 9, 1)).toBe(text.length);
  expect(lineColumnOffset(text, 3, 50)).toBe(text.length);
});
