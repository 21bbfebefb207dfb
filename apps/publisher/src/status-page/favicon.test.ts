import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { faviconIco } from './favicon.js';

describe('faviconIco', () => {
  const ico = faviconIco();
  it('is one 32x32 32-bit image in an icon file whose sizes add up', () => {
    assert.deepEqual([ico.readUInt16LE(0), ico.readUInt16LE(2), ico.readUInt16LE(4)], [0, 1, 1]);
    assert.deepEqual([ico.readUInt8(6), ico.readUInt8(7), ico.readUInt16LE(12)], [32, 32, 32]);
    const size = ico.readUInt32LE(14);
    const offset = ico.readUInt32LE(18);
    assert.equal(offset + size, ico.length);
    assert.equal(ico.readUInt32LE(offset), 40, 'BITMAPINFOHEADER');
    assert.equal(ico.readInt32LE(offset + 8), 64, 'height counts image and mask');
  });
  it('has transparent corners and an opaque centre', () => {
    const at = (x: number, yFromTop: number): number => 62 + ((31 - yFromTop) * 32 + x) * 4;
    assert.equal(ico.readUInt8(at(0, 0) + 3), 0);
    assert.equal(ico.readUInt8(at(16, 16) + 3), 255);
    assert.deepEqual([...ico.subarray(at(16, 16), at(16, 16) + 3)], [255, 255, 255]);
  });
});
