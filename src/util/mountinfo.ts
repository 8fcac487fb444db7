/**
 * Reading /proc/self/mountinfo (proc(5)). Fields are separated by single spaces; space, tab,
 * newline and backslash inside a field are written as octal escapes (`\040`, `\011`, `\012`,
 * `\134`), so a mount point with a space is one field. There can be any number of optional
 * fields before the `-` separator.
 *
 * Reading procfs does not wait on a disk, so the read is synchronous.
 */
import { readFileSync } from 'node:fs';

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** `major:minor` of st_dev for files on this filesystem. */
  majorMinor: string;
  /** Root of the mount within its filesystem (for nsfs: `net:[4026532009]`). */
  root: string;
  mountPoint: string;
  mountOptions: string[];
  optionalFields: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/** Decodes the octal escapes the kernel writes in mountinfo fields. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses one mountinfo line; undefined for a line that does not have the expected shape. */
export function parseMountInfoLine(line: string): MountInfo | undefined {
  const fields = line.split(' ');
  const sep = fields.indexOf('-', 6);
  if (fields.length < 10 || sep < 0 || fields.length < sep + 4) return undefined;
  const mountId = Number(fields[0]);
  const parentId = Number(fields[1]);
  if (!Number.isInteger(mountId) || !Number.isInteger(parentId)) return undefined;
  const f = (i: number) => unescapeMountField(fields[i] ?? '');
  return {
    mountId,
    parentId,
    majorMinor: fields[2] ?? '',
    root: f(3),
    mountPoint: f(4),
    mountOptions: (fields[5] ?? '').split(','),
    optionalFields: fields.slice(6, sep),
    fsType: f(sep + 1),
    source: f(sep + 2),
    superOptions: (fields[sep + 3] ?? '').split(','),
  };
}

/** Parses a whole mountinfo text; malformed lines are skipped. */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const entry = parseMountInfoLine(line);
    if (entry) out.push(entry);
  }
  return out;
}

/** The mounts of this process's mount namespace. */
export function readMountInfo(file = '/proc/self/mountinfo'): MountInfo[] {
  return parseMountInfo(readFileSync(file, 'utf8'));
}

/**
 * The mount visible at exactly `mountPoint`: when several are stacked there, the last one
 * listed (the most recent) is the one a path lookup reaches.
 */
export function mountAt(mounts: readonly MountInfo[], mountPoint: string): MountInfo | undefined {
  for (let i = mounts.length - 1; i >= 0; i--) {
    const m = mounts[i]!;
    if (m.mountPoint === mountPoint) return m;
  }
  return undefined;
}
