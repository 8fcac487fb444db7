// A small AML (ACPI Machine Language) writer: just what the DSDT of a micro-VM needs to
// describe its virtio-mmio devices (ACPI 6.5 §20). Each call appends encoded bytes.
//
// Runs on: the VM-building thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nodevisor::vmm::acpi {

class Aml {
 public:
  std::vector<uint8_t>& bytes() { return out_; }

  // Scope(<path>) { body } / Device(<name>) { body }: `body` is already-encoded AML.
  static std::vector<uint8_t> scope(const std::string& path, const std::vector<uint8_t>& body);
  static std::vector<uint8_t> device(const std::string& name, const std::vector<uint8_t>& body);
  // Name(<name>, <value>)
  static std::vector<uint8_t> name(const std::string& name, const std::vector<uint8_t>& value);
  static std::vector<uint8_t> string(const std::string& s);
  static std::vector<uint8_t> integer(uint64_t v);
  // A Buffer holding a resource template (descriptors + the end tag).
  static std::vector<uint8_t> resource_template(const std::vector<uint8_t>& descriptors);
  // Resource descriptors (§6.4.3): Memory32Fixed(ReadWrite, base, length) and an extended
  // interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { irq }.
  static std::vector<uint8_t> memory32_fixed(uint32_t base, uint32_t length);
  static std::vector<uint8_t> interrupt(uint32_t irq);

  // PkgLength (§20.2.4): the encoded length of `body_length` bytes plus the PkgLength itself.
  static std::vector<uint8_t> pkg_length(size_t body_length);
  // A NameSeg: four characters, padded with '_'.
  static std::vector<uint8_t> name_seg(const std::string& name);

 private:
  std::vector<uint8_t> out_;
};

}  // namespace nodevisor::vmm::acpi
