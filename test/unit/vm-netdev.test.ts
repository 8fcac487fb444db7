/**
 * Tier 1: the checks on network endpoints before anything native runs (src/vm/netdev.ts and
 * the device count in checkVmConfig): each mistake is an EINVAL naming the field.
 */
import { describe, expect, it } from 'vitest';

import { checkVmConfig } from '../../src/vm/config.js';
import { checkNetdev, parseMac } from '../../src/vm/netdev.js';

describe('network endpoint checks', () => {
  it('turns a MAC into six numbers, and refuses malformed and multicast ones', () => {
    expect(parseMac('02:00:5E:10:20:ff')).toEqual([2, 0, 0x5e, 0x10, 0x20, 0xff]);
    for (const bad of ['02:00:5e:10:20', '02-00-5e-10-20-30', '02:00:5e:10:20:3g', '', 42]) {
      expect(() => parseMac(bad, 'netdevs[0].mac')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('netdevs[0].mac') }));
    }
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow(/multicast/);
  });

  it('takes exactly one of tapFd and tapName, with a valid name and netns', () => {
    expect(checkNetdev({ tapName: 'tap0', netns: '/run/netns/x', mac: '02:00:00:00:00:01' })).toEqual({
      tapName: 'tap0',
      netns: '/run/netns/x',
      mac: [2, 0, 0, 0, 0, 1],
    });
    expect(checkNetdev({ tapFd: 7, mac: '02:00:00:00:00:01' })).toEqual({ tapFd: 7, mac: [2, 0, 0, 0, 0, 1] });
    const mac = '02:00:00:00:00:01';
    const cases: [object, RegExp][] = [
      [{ mac }, /exactly one of tapFd and tapName/],
      [{ tapFd: 3, tapName: 'x', mac }, /exactly one of tapFd and tapName/],
      [{ tapFd: -1, mac }, /tapFd must be an open file descriptor/],
      [{ tapFd: 3, netns: '/run/netns/x', mac }, /netns goes with tapName/],
      [{ tapName: 'a-name-longer-than-15', mac }, /tapName must be an interface name/],
      [{ tapName: 'a/b', mac }, /tapName/],
      [{ tapName: 'tap0', netns: '', mac }, /netns must be a non-empty path/],
    ];
    for (const [net, message] of cases) {
      expect(() => checkNetdev(net as never, 'attachNet')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(message) }));
    }
  });

  it('counts net devices and slots with the disks against the 18 virtio slots', async () => {
    const checked = await checkVmConfig({ kernel: '/k', netdevs: [{ tapName: 'tap0', mac: '02:00:00:00:00:01' }], hotplugNetSlots: 2 });
    expect(checked.netdevs).toHaveLength(1);
    expect(checked.hotplugNetSlots).toBe(2);
    await expect(checkVmConfig({ kernel: '/k', hotplugSlots: 10, hotplugNetSlots: 9 })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('more than 18 virtio devices'),
    });
    await expect(checkVmConfig({ kernel: '/k', netdevs: [{ mac: 'x' } as never] })).rejects.toMatchObject({
      message: expect.stringContaining('netdevs[0].mac'),
    });
  });
});
