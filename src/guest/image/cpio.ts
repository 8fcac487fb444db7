/**
 * A writer for the cpio "newc" format (the one the Linux kernel unpacks as an initramfs, see
 * the kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Deterministic on purpose: entries are sorted by path, inode numbers are assigned in that order
 * from 1, and mtime, uid, gid and device numbers are fixed, so the same inputs give the same
 * bytes (a cached initramfs can be compared, and a build can be reproduced). Pure; JS thread.
 */
import { NodevisorError } from '../../errors.js';

export type CpioEntry =
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const HEADER_SIZE = 110;

/** The archive's fixed modification time: 0 keeps builds byte-identical. */
export const CPIO_MTIME = 0;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new NodevisorError(`cpio: field value ${n} does not fit in 32 bits`, { code: 'EINVAL' });
  }
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Path inside the archive: no leading "/", no "." or ".." or empty components. */
function archivePath(path: string): string {
  const trimmed = path.replace(/^\/+/, '');
  const parts = trimmed.split('/');
  if (trimmed === '' || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new NodevisorError(`cpio: invalid entry path ${JSON.stringify(path)}`, { code: 'EINVAL' });
  }
  return trimmed;
}

function header(fields: {
  ino: number;
  mode: number;
  nlink: number;
  fileSize: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
}): string {
  return (
    '070701' +
    hex8(fields.ino) +
    hex8(fields.mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(fields.nlink) +
    hex8(CPIO_MTIME) +
    hex8(fields.fileSize) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(fields.rdevMajor) +
    hex8(fields.rdevMinor) +
    hex8(fields.nameSize) +
    hex8(0) // check (only for the "070702" crc format)
  );
}

function record(name: string, fields: Omit<Parameters<typeof header>[0], 'nameSize' | 'fileSize'>, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const head = Buffer.from(header({ ...fields, fileSize: data.length, nameSize: nameBytes.length }), 'ascii');
  return [
    head,
    nameBytes,
    Buffer.alloc(pad4(HEADER_SIZE + nameBytes.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ];
}

/**
 * The archive for `entries`, sorted by path, ending with the TRAILER!!! record. Duplicate paths
 * are an error. Parent directories are not added implicitly: list them (the kernel needs them
 * to exist before their children are unpacked, which sorting guarantees).
 */
export function writeCpio(entries: CpioEntry[]): Buffer {
  const named = entries.map((e) => ({ entry: e, name: archivePath(e.path) }));
  // Plain code-unit order, not locale order: the same on every machine.
  named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const parts: Buffer[] = [];
  let ino = 1;
  for (let i = 0; i < named.length; i++) {
    const { entry, name } = named[i]!;
    if (i > 0 && named[i - 1]!.name === name) {
      throw new NodevisorError(`cpio: duplicate entry ${name}`, { code: 'EINVAL' });
    }
    const base = { ino: ino++, rdevMajor: 0, rdevMinor: 0 };
    switch (entry.type) {
      case 'file':
        parts.push(...record(name, { ...base, mode: S_IFREG | (entry.mode ?? 0o644), nlink: 1 }, entry.data));
        break;
      case 'dir':
        parts.push(...record(name, { ...base, mode: S_IFDIR | (entry.mode ?? 0o755), nlink: 2 }, Buffer.alloc(0)));
        break;
      case 'symlink':
        parts.push(...record(name, { ...base, mode: S_IFLNK | 0o777, nlink: 1 }, Buffer.from(entry.target, 'utf8')));
        break;
      case 'char':
        parts.push(
          ...record(
            name,
            { ...base, mode: S_IFCHR | (entry.mode ?? 0o600), nlink: 1, rdevMajor: entry.major, rdevMinor: entry.minor },
            Buffer.alloc(0),
          ),
        );
        break;
    }
  }
  parts.push(...record('TRAILER!!!', { ino: 0, mode: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0 }, Buffer.alloc(0)));
  return Buffer.concat(parts);
}
