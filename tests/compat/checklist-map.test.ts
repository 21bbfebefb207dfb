import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import ts from 'typescript';
import { ROOT } from '../helpers/apps.js';

/**
 * docs/compat-checklist.md maps every item (1-35) of the compatibility checklist to tests. This
 * fails when an item is missing or duplicated, when a row names no test, a file that does not
 * exist, or a test/suite that the file does not really declare and run: the name must be the
 * literal first argument of an `it(`, `test(` or `describe(` call (not text that merely appears in
 * the file), and neither that call nor a suite around it may be skipped or marked todo. So a renamed,
 * deleted, commented-out or skipped test cannot silently leave an item unproved.
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

const TEST_FUNCTIONS = new Set(['it', 'test', 'describe']);
const SUITE_FUNCTIONS = new Set(['describe']);

/** One it/test/describe call found in a source file. */
interface Declaration {
  readonly suite: boolean;
  /** The literal name; null when it is computed (a template with `${}`, a variable). */
  readonly name: string | null;
  /** Why it does not run (`.skip`, `{ todo }`, `t.skip()`, a skipped suite around it), or null. */
  readonly skipped: string | null;
  /** Declarations nested inside it (for suites). */
  readonly children: Declaration[];
}

/** `it`, `it.skip`, `describe.todo`, ... : the function and its modifier, or null for other calls. */
function testCallee(expr: ts.Expression): { fn: string; modifier: string | null } | null {
  if (ts.isIdentifier(expr) && TEST_FUNCTIONS.has(expr.text)) return { fn: expr.text, modifier: null };
  if (ts.isPropertyAccessExpression(expr) && ts.isIdentifier(expr.expression) && TEST_FUNCTIONS.has(expr.expression.text)) {
    return { fn: expr.expression.text, modifier: expr.name.text };
  }
  return null;
}

/** The reason a node:test options object or test body turns the test off, or null. */
function skipReason(call: ts.CallExpression, modifier: string | null): string | null {
  if (modifier === 'skip' || modifier === 'todo') return `.${modifier}`;
  for (const arg of call.arguments.slice(1)) {
    if (ts.isObjectLiteralExpression(arg)) {
      for (const p of arg.properties) {
        // A spread could carry skip/todo from anywhere: not accepted as proof either.
        if (ts.isSpreadAssignment(p)) return '{ ...options }';
        const key = p.name !== undefined && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) ? p.name.text : null;
        if (key === 'skip' || key === 'todo') return `{ ${key} }`;
      }
    }
    if (ts.isFunctionExpression(arg) || ts.isArrowFunction(arg)) {
      // `(t) => { t.skip(); ... }` and `t.todo()` turn a running test into a skipped one.
      const param = arg.parameters[0]?.name;
      if (param === undefined || !ts.isIdentifier(param)) continue;
      let found: string | null = null;
      const visit = (n: ts.Node): void => {
        if (found !== null) return;
        if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && ts.isIdentifier(n.expression.expression) && n.expression.expression.text === param.text && ['skip', 'todo'].includes(n.expression.name.text)) {
          found = `${param.text}.${n.expression.name.text}()`;
        }
        ts.forEachChild(n, visit);
      };
      visit(arg.body);
      if (found !== null) return found;
    }
  }
  return null;
}

/** Every it/test/describe call of a file, as a tree, with inherited skips. */
export function declarations(source: string): Declaration[] {
  const file = ts.createSourceFile('checked.test.ts', source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const top: Declaration[] = [];
  const walk = (node: ts.Node, into: Declaration[], inheritedSkip: string | null): void => {
    if (ts.isCallExpression(node)) {
      const callee = testCallee(node.expression);
      if (callee !== null) {
        const first = node.arguments[0];
        const name = first !== undefined && (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first)) ? first.text : null;
        const own = skipReason(node, callee.modifier);
        const skipped = inheritedSkip ?? (own === null ? null : `${callee.fn}${own.startsWith('.') ? '' : ' '}${own}`);
        const decl: Declaration = { suite: SUITE_FUNCTIONS.has(callee.fn), name, skipped, children: [] };
        into.push(decl);
        ts.forEachChild(node, (child) => walk(child, decl.children, skipped === null ? null : `inside a skipped suite (${skipped})`));
        return;
      }
    }
    ts.forEachChild(node, (child) => walk(child, into, inheritedSkip));
  };
  walk(file, top, null);
  return top;
}

function flatten(list: readonly Declaration[]): Declaration[] {
  return list.flatMap((d) => [d, ...flatten(d.children)]);
}

/**
 * Null when `source` declares a running test or suite with exactly this name (a suite must hold at
 * least one test and nothing skipped), else what is wrong.
 */
export function checkDeclared(source: string, name: string): string | null {
  const found = flatten(declarations(source)).filter((d) => d.name === name);
  if (found.length === 0) return `no it/test/describe declares ${JSON.stringify(name)}`;
  for (const d of found) {
    if (d.skipped !== null) return `${JSON.stringify(name)} does not run: ${d.skipped}`;
    if (d.suite) {
      const inside = flatten(d.children);
      if (!inside.some((c) => !c.suite)) return `suite ${JSON.stringify(name)} holds no test`;
      const off = inside.find((c) => c.skipped !== null);
      if (off !== undefined) return `suite ${JSON.stringify(name)} holds a test that does not run (${JSON.stringify(off.name)}: ${off.skipped})`;
    }
  }
  return null;
}

it('docs/compat-checklist.md maps checklist items 1-35 to tests that exist', () => {
  const rows = parseMap(readFileSync(`${ROOT}docs/compat-checklist.md`, 'utf8'));
  // Items after 35 extend the reference checklist (protocol 5, parity with push server 2.0); the
  // numbering must stay gap-free so a deleted row cannot go unnoticed either.
  const last = Math.max(35, ...rows.keys());
  assert.deepEqual([...rows.keys()].sort((a, b) => a - b), Array.from({ length: last }, (_, i) => i + 1), `every item 1-${last} exactly once`);
  for (const [item, refs] of rows) {
    assert.ok(refs.length > 0, `item ${item} names no test`);
    for (const ref of refs) {
      assert.match(ref.file, /\.test\.ts$/, `item ${item}: ${ref.file} is not a test file`);
      assert.ok(existsSync(`${ROOT}${ref.file}`), `item ${item}: ${ref.file} does not exist`);
      const problem = checkDeclared(readFileSync(`${ROOT}${ref.file}`, 'utf8'), ref.name);
      assert.equal(problem, null, `item ${item}: ${ref.file}: ${problem}`);
    }
  }
});

it('the name check accepts only running tests declared with exactly that name', () => {
  const src = [
    "describe('suite a', () => {",
    "  it('does \"x\"', async () => {});",
    '  it(`templ ${1}`, () => {});',
    "  test('plain test', () => {});",
    '});',
    "const note = 'mentioned only';",
    "helper('not a test', () => {});",
    "// it('commented out', () => {});",
    "/* test('in a block comment', () => {}); */",
    "it.skip('skipped', () => {});",
    "it.todo('todo');",
    "test.skip('skipped test', () => {});",
    "it('skip option', { skip: true }, () => {});",
    "it('todo option', { todo: 'later' }, () => {});",
    "it('spread options', { ...opts }, () => {});",
    "it('skips itself', (t) => { t.skip('not now'); });",
    "it('todo itself', async (t) => { t.todo(); });",
    "describe.skip('skipped suite', () => { it('inside a skipped suite', () => {}); });",
    "describe('suite with a skipped test', () => { it('runs', () => {}); it.skip('does not', () => {}); });",
    "describe('empty suite', () => {});",
    "describe('suite { skip }', { skip: 'x' }, () => { it('nested under an option-skipped suite', () => {}); });",
    "it('timeout option is fine', { timeout: 5000 }, () => {});",
  ].join('\n');
  const ok = (name: string): boolean => checkDeclared(src, name) === null;
  assert.equal(ok('suite a'), true);
  assert.equal(ok('does "x"'), true);
  assert.equal(ok('plain test'), true);
  assert.equal(ok('timeout option is fine'), true);
  assert.equal(ok('runs'), true);
  assert.equal(ok('does'), false, 'a prefix is not a name');
  assert.equal(ok('missing test'), false);
  assert.equal(ok('templ ${1}'), false, 'a template with substitutions has no fixed name');
  for (const name of ['mentioned only', 'not a test', 'commented out', 'in a block comment']) assert.equal(ok(name), false, `${name}: not a declaration`);
  for (const name of ['skipped', 'todo', 'skipped test', 'skip option', 'todo option', 'spread options', 'skips itself', 'todo itself', 'skipped suite', 'inside a skipped suite', 'nested under an option-skipped suite', 'suite { skip }']) {
    assert.match(checkDeclared(src, name) ?? '', /does not run/, `${name}: skipped or todo`);
  }
  assert.match(checkDeclared(src, 'suite with a skipped test') ?? '', /holds a test that does not run/);
  assert.match(checkDeclared(src, 'empty suite') ?? '', /holds no test/);
});
