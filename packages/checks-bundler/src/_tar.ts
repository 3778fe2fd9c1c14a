/**
 * A minimal, fully deterministic POSIX ustar writer (the strict reader is core's `readTar`).
 *
 * The bundle format needs only regular files with short names, so the headers are written by hand:
 * no pax/GNU extensions, mode 0644, uid/gid 0, empty uname/gname, a fixed mtime, and the archive ends
 * with exactly two zero blocks (no padding to a 10 KiB record).
 */

const BLOCK = 512;

export interface TarMember {
  name: string;
  data: Uint8Array;
}

function writeString(header: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'ascii');
  if (bytes.length > length) throw new Error(`tar field too long: ${value}`);
  bytes.copy(header, offset);
}

/** Octal number, zero-padded to `length - 1` digits, NUL-terminated (the classic ustar layout). */
function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (!Number.isSafeInteger(value) || value < 0 || digits.length > length - 1) {
    throw new Error(`tar numeric field out of range: ${value}`);
  }
  writeString(header, offset, length, digits.padStart(length - 1, '0'));
}

function header(name: string, size: number, mtime: number): Buffer {
  if (!/^[A-Za-z0-9._-]{1,99}$/.test(name)) throw new Error(`unsupported tar member name: ${name}`);
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, name); // name
  writeOctal(h, 100, 8, 0o644); // mode
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, size); // size
  writeOctal(h, 136, 12, mtime); // mtime
  h.fill(0x20, 148, 156); // checksum placeholder: eight spaces
  writeString(h, 156, 1, '0'); // typeflag: regular file
  // linkname (157..257) stays empty
  writeString(h, 257, 6, 'ustar'); // magic "ustar\0"
  writeString(h, 263, 2, '00'); // version
  // uname (265..297), gname (297..329) stay empty
  writeOctal(h, 329, 8, 0); // devmajor
  writeOctal(h, 337, 8, 0); // devminor
  // prefix (345..500) stays empty
  let sum = 0;
  for (const byte of h) sum += byte;
  writeString(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** Serializes `members` (in the given order) into an uncompressed ustar archive. */
export function writeTar(members: readonly TarMember[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const member of members) {
    parts.push(header(member.name, member.data.length, mtime));
    parts.push(Buffer.from(member.data.buffer, member.data.byteOffset, member.data.byteLength));
    const pad = (BLOCK - (member.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
