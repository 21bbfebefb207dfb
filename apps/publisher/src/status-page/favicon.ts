/**
 * The status page's icon as a Windows icon file (what browsers ask /favicon.ico for), drawn here
 * instead of shipped as a binary: a 32x32 32-bit image, a blue disc with a white ring and dot
 * (a broadcast signal). Built once at start.
 */
const SIZE = 32;

/** RGBA of the pixel at (x, y), y from the top. */
function pixel(x: number, y: number): [number, number, number, number] {
  const c = (SIZE - 1) / 2;
  const d = Math.hypot(x - c, y - c);
  if (d > 15.5) return [0, 0, 0, 0];
  if (d <= 3.5 || (d >= 7.5 && d <= 10)) return [255, 255, 255, 255];
  return [31, 111, 235, 255];
}

export function faviconIco(): Buffer {
  const pixels = SIZE * SIZE * 4;
  const mask = SIZE * 4; // 1 bit per pixel, rows padded to 32 bits; all 0: the alpha channel decides
  const image = 40 + pixels + mask;
  const buf = Buffer.alloc(6 + 16 + image);
  // ICONDIR: reserved, type 1 (icon), one image.
  buf.writeUInt16LE(0, 0);
  buf.writeUInt16LE(1, 2);
  buf.writeUInt16LE(1, 4);
  // ICONDIRENTRY: 32x32, no palette, 1 plane, 32 bits, size, offset.
  buf.writeUInt8(SIZE, 6);
  buf.writeUInt8(SIZE, 7);
  buf.writeUInt16LE(1, 10);
  buf.writeUInt16LE(32, 12);
  buf.writeUInt32LE(image, 14);
  buf.writeUInt32LE(22, 18);
  // BITMAPINFOHEADER; the height counts the image and its mask.
  buf.writeUInt32LE(40, 22);
  buf.writeInt32LE(SIZE, 26);
  buf.writeInt32LE(SIZE * 2, 30);
  buf.writeUInt16LE(1, 34);
  buf.writeUInt16LE(32, 36);
  buf.writeUInt32LE(pixels + mask, 42);
  // Pixels bottom row first, BGRA.
  let o = 62;
  for (let y = SIZE - 1; y >= 0; y--) {
    for (let x = 0; x < SIZE; x++) {
      const [r, g, b, a] = pixel(x, y);
      buf.writeUInt8(b, o++);
      buf.writeUInt8(g, o++);
      buf.writeUInt8(r, o++);
      buf.writeUInt8(a, o++);
    }
  }
  return buf;
}
