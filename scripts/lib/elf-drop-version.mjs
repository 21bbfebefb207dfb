// node scripts/lib/elf-drop-version.mjs <file> <version>
// Removes one required symbol version (e.g. GLIBC_2.38) from an x86-64 ELF shared object, in place:
// every dynamic symbol bound to that version becomes unversioned, and the version is unlinked from
// the object's list of needed versions, so the dynamic loader no longer demands it. Prints the
// names of the symbols it unbound, one a line, for the caller to check against what it provides
// (scripts/uws-compat.sh). Exits 1, changing nothing, when the file is not such an object or does
// not need that version.
//
// patchelf --clear-symbol-version (Debian 12 has 0.14) does the first half only: the loader then
// still refuses the object for the version it lists as needed.
import { readFileSync, writeFileSync } from 'node:fs';

const [file, version] = process.argv.slice(2);
if (file === undefined || version === undefined) fail('usage: elf-drop-version.mjs <file> <version>');
const buf = readFileSync(file);
if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) fail(`${file}: not a 64-bit little-endian ELF file`);

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const shoff = Number(buf.readBigUInt64LE(0x28));
const shentsize = buf.readUInt16LE(0x3a);
const shnum = buf.readUInt16LE(0x3c);
const sections = [];
for (let i = 0; i < shnum; i++) {
  const at = shoff + i * shentsize;
  sections.push({
    type: buf.readUInt32LE(at + 4),
    offset: Number(buf.readBigUInt64LE(at + 24)),
    size: Number(buf.readBigUInt64LE(at + 32)),
    link: buf.readUInt32LE(at + 40),
    info: buf.readUInt32LE(at + 44),
  });
}
const only = (type, what) => {
  const found = sections.filter((s) => s.type === type);
  if (found.length !== 1) fail(`${file}: expected one ${what} section, found ${found.length}`);
  return found[0];
};
const dynsym = only(SHT_DYNSYM, '.dynsym');
const versym = only(SHT_GNU_VERSYM, '.gnu.version');
const verneed = only(SHT_GNU_VERNEED, '.gnu.version_r');
const str = (section, at) => {
  const start = sections[section.link].offset + at;
  return buf.toString('latin1', start, buf.indexOf(0, start));
};

// Find the needed version: Verneed entries (16 bytes) each head a chain of Vernaux entries (16 bytes).
let target; // { need, prev, aux, index }
let needAt = verneed.offset;
for (let n = 0; n < verneed.info; n++) {
  let prev;
  let auxAt = needAt + buf.readUInt32LE(needAt + 8);
  for (let a = 0; a < buf.readUInt16LE(needAt + 2); a++) {
    if (str(verneed, buf.readUInt32LE(auxAt + 8)) === version) {
      if (target !== undefined) fail(`${file}: ${version} is needed from more than one library`);
      target = { need: needAt, prev, aux: auxAt, index: buf.readUInt16LE(auxAt + 6) & 0x7fff };
    }
    prev = auxAt;
    auxAt += buf.readUInt32LE(auxAt + 12);
  }
  needAt += buf.readUInt32LE(needAt + 12);
}
if (target === undefined) fail(`${file}: does not need ${version}`);

// Unbind the symbols (index 1 = global, unversioned), then unlink the version from its chain.
const unbound = [];
for (let i = 0; i < dynsym.size / 24; i++) {
  const at = versym.offset + i * 2;
  if ((buf.readUInt16LE(at) & 0x7fff) !== target.index) continue;
  unbound.push(str(dynsym, buf.readUInt32LE(dynsym.offset + i * 24)));
  buf.writeUInt16LE(1, at);
}
const next = buf.readUInt32LE(target.aux + 12);
if (target.prev === undefined) {
  // First of its chain: the Verneed entry points past it.
  const first = buf.readUInt32LE(target.need + 8);
  buf.writeUInt32LE(next === 0 ? first : first + next, target.need + 8);
} else {
  buf.writeUInt32LE(next === 0 ? 0 : buf.readUInt32LE(target.prev + 12) + next, target.prev + 12);
}
buf.writeUInt16LE(buf.readUInt16LE(target.need + 2) - 1, target.need + 2);
if (buf.readUInt16LE(target.need + 2) === 0) fail(`${file}: ${version} is the only version needed from its library; not handled`);
writeFileSync(file, buf);
for (const name of unbound.sort()) console.log(name);

function fail(message) {
  console.error(`elf-drop-version: ${message}`);
  process.exit(1);
}
