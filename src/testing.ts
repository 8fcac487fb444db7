/**
 * Test-only access to a Vm: the probe guest's wait port, reads of guest memory and the native
 * event callback. Tests import this file by relative path; it is not in package.json `exports`
 * and src/index.ts does not re-export it, so a user of the package never sees it. Everything here runs on the JS thread.
 */
import { invalid } from './errors.js';
import type { NativeVmHandle, NativeVmTestMethods } from './native/binding.js';
import { vmTestAccess, type Vm } from './vm/vm.js';

function testHandle(vm: Vm): NativeVmHandle & NativeVmTestMethods {
  // The addon's vmCreate resolves an object with both sets of methods (binding.ts); Vm keeps it
  // typed as the production half only.
  return vmTestAccess.handle(vm) as NativeVmHandle & NativeVmTestMethods;
}

/** The probe guest's wait port: its next read returns `word` (see native/guest/probe/README.md). */
export function postWaitWord(vm: Vm, word: number): boolean {
  if (!Number.isInteger(word) || word < 0 || word > 0xfffffffe) {
    throw invalid('postWaitWord: word must be an integer from 0 to 0xfffffffe');
  }
  return testHandle(vm).postWaitWord(word);
}

/** A copy of `length` bytes of guest memory at guest-physical `address` (at most 1 MiB). */
export function debugReadGuest(vm: Vm, address: number, length: number): Buffer {
  return testHandle(vm).debugReadGuest(address, length);
}

/** Hands `vm` an event as if the addon had sent it (to test how unknown kinds are handled). */
export function dispatchNativeEvent(vm: Vm, kind: string, payload: unknown): void {
  vmTestAccess.dispatch(vm, kind, payload);
}
