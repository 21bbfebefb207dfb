import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Reads V8 CPU profiles (node --cpu-prof, written by `npm run bench -- <scenario> --profile <dir>`)
 * and prints where the time went: self time by function, and optionally folded stacks (one line
 * per stack, "frame;frame;frame count") that flame-graph tools render.
 *   node tools/loadgen/dist/profile-top.js <file.cpuprofile> [--folded out.txt] [--top 25]
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (file === undefined) {
  process.stderr.write('usage: profile-top <file.cpuprofile> [--folded out.txt] [--top N]\n');
  process.exit(2);
}
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const hits = new Map<number, number>();
for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
const total = profile.samples.length;

const label = (n: ProfileNode): string => {
  const f = n.callFrame;
  const where = f.url === '' ? '' : ` ${basename(f.url)}:${f.lineNumber + 1}`;
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`;
};

const self = new Map<string, number>();
for (const [id, h] of hits) {
  const key = label(byId.get(id) as ProfileNode);
  self.set(key, (self.get(key) ?? 0) + h);
}
const top = Number(opt('--top') ?? 25);
process.stdout.write(`${basename(file)}: ${total} samples\n`);
for (const [name, h] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${((100 * h) / total).toFixed(1).padStart(5)}%  ${name}\n`);
}

const folded = opt('--folded');
if (folded !== undefined) {
  const lines = new Map<string, number>();
  for (const [id, h] of hits) {
    const stack: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) stack.push(label(byId.get(cur) as ProfileNode).replace(/;/g, ','));
    const key = stack.reverse().join(';');
    lines.set(key, (lines.get(key) ?? 0) + h);
  }
  writeFileSync(folded, [...lines.entries()].map(([k, v]) => `${k} ${v}`).join('\n') + '\n');
  process.stdout.write(`folded stacks written to ${folded}\n`);
}
