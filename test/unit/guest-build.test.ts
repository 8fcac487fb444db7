/**
 * `nodevisor guest build` against the real thing: Debian's cloud kernel package fetched with
 * apt-get download (cached under the nodevisor cache, so only the first run downloads). Skipped,
 * with the reason, when the package cannot be had here (no Debian tools, no network, no agent).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { agentBinaryPath } from '../../src/guest/agent-binary.js';
import { buildGuestImage, type GuestImage } from '../../src/guest/image/build.js';
import { readModInfo } from '../../src/guest/image/modinfo.js';
import { selectModules } from '../../src/guest/image/modules.js';
import { need, needs, skipUnless } from '../helpers/needs.js';
import { fakeKernelTree } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

type Fetch = { ok: true; image: GuestImage; bytes: Buffer } | { ok: false; reason: string };

async function firstBuild(): Promise<Fetch> {
  if (!existsSync(agentBinaryPath({ mustExist: false }))) return { ok: false, reason: 'the agent binary is not built (npx node-gyp build)' };
  if (!needs.command('apt-get').ok || !needs.command('dpkg-deb').ok) return { ok: false, reason: "Debian's apt-get and dpkg-deb are not installed" };
  try {
    const image = await buildGuestImage();
    return { ok: true, image, bytes: readFileSync(image.initrd) };
  } catch (err) {
    // Only "Debian's tools or mirror are not available here" is a reason to skip; any other
    // failure (the cpio writer, module selection, vmlinux extraction) fails this file.
    if ((err as { code?: string }).code !== 'ENODEBIAN') throw err;
    return { ok: false, reason: `the Debian kernel package cannot be had here: ${(err as Error).message.split('\n')[0]}` };
  }
}

const first = await firstBuild();
const debianKernel = need(first.ok, first.ok ? '' : first.reason);
const agentBuilt = need(existsSync(agentBinaryPath({ mustExist: false })), 'the agent binary is not built (npm ci builds it)');

describe('nodevisor guest build (Debian cloud kernel)', skipUnless('guest build with the Debian kernel', debianKernel), () => {
  const built = first as Extract<Fetch, { ok: true }>;

  it('records the package and kernel version and keeps the kernel', () => {
    const { image } = built;
    expect(image.package?.name).toMatch(/^linux-image-\d.*-cloud-amd64$/);
    expect(image.package?.version).toMatch(/^\d+\.\d+/);
    expect(image.kernelVersion).toBe(image.package!.name.replace(/^linux-image-/, ''));
    // A bzImage: the "HdrS" boot protocol magic at 0x202.
    expect(readFileSync(image.kernel).subarray(0x202, 0x206).toString('latin1')).toBe('HdrS');
    const manifest = JSON.parse(readFileSync(join(image.initrd, '..', 'image.json'), 'utf8')) as GuestImage;
    expect(manifest.package).toEqual(image.package);
  });

  it("unpacks the ELF vmlinux (PVH note) from the bzImage", skipUnless("unpacking the cloud kernel's lz4 payload", needs.command('lz4')), () => {
    const elf = readFileSync(built.image.vmlinux!);
    expect(elf.readUInt32BE(0)).toBe(0x7f454c46);
    expect(execFileSync('readelf', ['-n', built.image.vmlinux!], { encoding: 'utf8' })).toMatch(/Xen\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000012\)|XEN_ELFNOTE_PHYS32_ENTRY/);
  });

  it('writes an initramfs whose cpio -t listing holds /init and the modules, in load order in nodevisor.list', skipUnless('listing the initramfs', needs.command('cpio')), () => {
    const { image, bytes } = built;
    const listing = execFileSync('cpio', ['-t', '--quiet', '-F', image.initrd], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toContain('init');
    expect(listing).toContain('dev/console');
    expect(listing).toContain('lib/modules/nodevisor.list');
    for (const m of ['virtio_mmio', 'virtio_blk', 'virtio_console']) {
      expect(image.modules.includes(m) || image.builtin.includes(m), m).toBe(true);
    }
    for (const m of image.modules) expect(listing).toContain(`lib/modules/${image.kernelVersion}/${m}.ko`);
    // /init is the agent binary itself.
    const out = tempDir();
    execFileSync('sh', ['-c', `cd '${out}' && cpio -i --quiet --make-directories init lib/modules/nodevisor.list < '${image.initrd}'`]);
    expect(readFileSync(join(out, 'init')).equals(readFileSync(agentBinaryPath()))).toBe(true);
    const list = readFileSync(join(out, 'lib/modules/nodevisor.list'), 'utf8').trim().split('\n');
    expect(list).toEqual(image.modules.map((m) => `/lib/modules/${image.kernelVersion}/${m}.ko`));
    // Dependencies come first: virtio_ring before virtio before the drivers.
    expect(image.modules.indexOf('virtio_ring')).toBeLessThan(image.modules.indexOf('virtio'));
    expect(image.modules.indexOf('virtio')).toBeLessThan(image.modules.indexOf('virtio_blk'));
    expect(bytes.length).toBeGreaterThan(0);
  });

  it('builds byte-identical initramfs on a second run, and from --kernel/--modules of the same package', async () => {
    const second = await buildGuestImage();
    expect(readFileSync(second.initrd).equals(built.bytes)).toBe(true);
    expect(second.initrdSha256).toBe(built.image.initrdSha256);
    const tree = join(built.image.initrd, '..', 'package');
    const fromPaths = await buildGuestImage({
      kernel: join(tree, 'boot', `vmlinuz-${built.image.kernelVersion}`),
      modules: join(tree, 'lib', 'modules', built.image.kernelVersion),
      cacheDir: tempDir(),
    });
    expect(readFileSync(fromPaths.initrd).equals(built.bytes)).toBe(true);
    expect(fromPaths.package).toBeUndefined();
  });

  it("every module's dependencies (from .modinfo) are in the initramfs before it", async () => {
    const tree = join(built.image.initrd, '..', 'package', 'lib', 'modules', built.image.kernelVersion);
    const selection = await selectModules(tree, built.image.modules);
    const seen = new Set<string>();
    for (const m of selection.modules) {
      for (const dep of readModInfo(m.data).depends) expect(seen.has(dep) || built.image.builtin.includes(dep), `${m.name} needs ${dep}`).toBe(true);
      seen.add(m.name);
    }
  });
});

describe('nodevisor guest build without Debian', () => {
  it('says to pass --kernel and --modules when the Debian tools are missing', async () => {
    const saved = process.env.PATH;
    process.env.PATH = tempDir(); // an empty directory: no apt-cache, apt-get, dpkg-deb
    try {
      await expect(buildGuestImage({ cacheDir: tempDir() })).rejects.toMatchObject({
        code: 'ENODEBIAN',
        message: expect.stringMatching(/apt-cache.*not installed.*--kernel <vmlinuz> --modules/s),
      });
    } finally {
      process.env.PATH = saved;
    }
  });

  const offline = skipUnless('guest build from --kernel/--modules', agentBuilt, needs.command('xz'));

  it('builds from --kernel and --modules alone, resolving dependencies from .modinfo, decompressing .ko.xz', offline, async () => {
    const { root, modules } = fakeKernelTree();
    const image = await buildGuestImage({ kernel: join(root, 'vmlinuz'), modules, cacheDir: tempDir() });
    expect(image.modules).toEqual(['base_mod', 'virtio_mmio', 'virtio_blk', 'virtio_console']);
    expect(image.builtin).toEqual(['ext4']);
    await expect(
      buildGuestImage({ kernel: join(root, 'vmlinuz'), modules, cacheDir: tempDir(), extraModules: ['no_such_mod'] }),
    ).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('no_such_mod') });
  });

  it(
    'puts the decompressed module into the initramfs (cpio -i)',
    skipUnless('extracting the initramfs', agentBuilt, needs.command('xz'), needs.command('cpio')),
    async () => {
      const { root, modules, console } = fakeKernelTree();
      const image = await buildGuestImage({ kernel: join(root, 'vmlinuz'), modules, cacheDir: tempDir() });
      const out = tempDir();
      execFileSync('sh', ['-c', `cd '${out}' && cpio -i --quiet --make-directories < '${image.initrd}'`]);
      expect(readFileSync(join(out, 'lib/modules/9.9.9-test/virtio_console.ko')).equals(console)).toBe(true);
    },
  );
});
