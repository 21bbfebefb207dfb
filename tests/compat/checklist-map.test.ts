import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { ROOT } from '../helpers/apps.js';

/**
 * docs/compat-checklist.md maps every item (1-35) of the compatibility checklist to tests. This
 * fails when an item is missing or duplicated, when a row names no test, a file that does not
 * exist, or a test/suite name that the file does not declare (so a renamed or deleted test cannot
 * silently leave an item unproved).
 */

interface Ref {
  readonly file: string;
  readonly name: string;
}

function parseMap(doc: string): Map<number, Ref[]> {
  const rows = new Map<number, Ref[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| (\d+) \| .+ \| (.+) \|$/.exec(line);
    if (m === null) continue;
    const item = Number(m[1]);
    assert.ok(!rows.has(item), `item ${item} appears twice`);
    const refs = (m[2] as string).split('<br>').map((entry) => {
      const r = /^`([^`]+)` › (.+)$/.exec(entry.trim());
      assert.ok(r !== null, `item ${item}: cannot read ${JSON.stringify(entry)} (expected \`file\` › test name)`);
      return { file: r[1] as string, name: (r[2] as string).trim() };
    });
    rows.set(item, refs);
  }
  return rows;
}

/** True when `source` declares it/test/describe with exactly this name as a string literal. */
export function declaresTest(source: string, name: string): boolean {
  return ["'", '"', '`'].some((q) => new RegExp(`\\b(?:it|test|describe)\\(\\s*${q}`).test(source) && source.includes(`(${q}${name}${q}`));
}

it('docs/compat-checklist.md maps checklist items 1-35 to tests that exist', () => {
  const rows = parseMap(readFileSync(`${ROOT}docs/compat-checklist.md`, 'utf8'));
  assert.deepEqual([...rows.keys()].sort((a, b) => a - b), Array.from({ length: 35 }, (_, i) => i + 1), 'every item 1-35 exactly once');
  for (const [item, refs] of rows) {
    assert.ok(refs.length > 0, `item ${item} names no test`);
    for (const ref of refs) {
      assert.match(ref.file, /\.test\.ts$/, `item ${item}: ${ref.file} is not a test file`);
      assert.ok(existsSync(`${ROOT}${ref.file}`), `item ${item}: ${ref.file} does not exist`);
      assert.ok(declaresTest(readFileSync(`${ROOT}${ref.file}`, 'utf8'), ref.name), `item ${item}: ${ref.file} declares no test named ${JSON.stringify(ref.name)}`);
    }
  }
});

it('the name check finds declared tests and nothing else', () => {
  const src = "describe('suite a', () => {\n  it('does \"x\"', async () => {});\n  it(`templ ${1}`, () => {});\n});";
  assert.equal(declaresTest(src, 'suite a'), true);
  assert.equal(declaresTest(src, 'does "x"'), true);
  assert.equal(declaresTest(src, 'does'), false, 'a prefix is not a name');
  assert.equal(declaresTest(src, 'missing test'), false);
});
