#include "vmm/arch/x86_64/elf_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "guest/protocol/elf_note.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/util/hex.h"

namespace nodevisor::vmm::x86_64 {

namespace {

constexpr uint32_t kXenElfNotePhys32Entry = 18;
constexpr uint16_t kMaxProgramHeaders = 64;

Error bad_elf(const std::string& what) { return plain_error("EBADELF", "invalid kernel ELF: " + what); }

// [offset, offset + size) inside a buffer of `total` bytes, without overflow.
bool within(uint64_t offset, uint64_t size, uint64_t total) { return offset <= total && size <= total - offset; }

uint64_t align_up4(uint64_t value) { return (value + 3) & ~uint64_t{3}; }

struct EntryNotes {
  uint64_t pvh_entry = 0;   // 0: absent
  uint64_t user_entry = 0;  // 0: absent
  uint64_t generation_gpa = 0;  // 0: absent
};

// An 8-byte (or, for PVH, 4-byte) address in a note descriptor.
Result<uint64_t> note_address(const uint8_t* desc, uint32_t size, const char* what, bool allow_32) {
  if (allow_32 && size == 4) {
    uint32_t value;
    std::memcpy(&value, desc, 4);
    return static_cast<uint64_t>(value);
  }
  if (size == 8) {
    uint64_t value;
    std::memcpy(&value, desc, 8);
    return value;
  }
  return bad_elf(std::string("the ") + what + " note has size " + std::to_string(size));
}

// Scans one PT_NOTE segment for the Xen PVH entry and the nodevisor user entry.
Status scan_entry_notes(std::span<const uint8_t> notes, EntryNotes& found) {
  static constexpr char kNodevisor[] = NODEVISOR_NOTE_NAME;
  uint64_t pos = 0;
  while (notes.size() - pos >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr header;
    std::memcpy(&header, notes.data() + pos, sizeof header);
    pos += sizeof header;
    const uint64_t name_size = align_up4(header.n_namesz);
    const uint64_t desc_size = align_up4(header.n_descsz);
    if (!within(pos, name_size, notes.size()) || !within(pos + name_size, desc_size, notes.size())) {
      return bad_elf("a note runs past the end of its PT_NOTE segment");
    }
    const uint8_t* name = notes.data() + pos;
    const uint8_t* desc = name + name_size;
    const bool is_xen = header.n_namesz == 4 && std::memcmp(name, "Xen", 4) == 0;
    const bool is_nodevisor = header.n_namesz == sizeof kNodevisor && std::memcmp(name, kNodevisor, sizeof kNodevisor) == 0;
    if (is_xen && header.n_type == kXenElfNotePhys32Entry) {
      // Linux emits an 8-byte value, others 4 bytes; the entry is 32-bit either way.
      auto entry = note_address(desc, header.n_descsz, "PVH entry", true);
      if (!entry.ok()) return entry.error();
      if (entry.value() > UINT32_MAX) return bad_elf("the PVH entry point is above 4 GiB");
      found.pvh_entry = entry.value();
    } else if (is_nodevisor && header.n_type == NODEVISOR_NOTE_USER_ENTRY64) {
      auto entry = note_address(desc, header.n_descsz, "nodevisor user entry", false);
      if (!entry.ok()) return entry.error();
      found.user_entry = entry.value();
    } else if (is_nodevisor && header.n_type == NODEVISOR_NOTE_GENERATION_GPA) {
      auto address = note_address(desc, header.n_descsz, "nodevisor generation address", false);
      if (!address.ok()) return address.error();
      found.generation_gpa = address.value();
    }
    pos += name_size + desc_size;
  }
  return {};
}

}  // namespace

bool looks_like_elf(std::span<const uint8_t> image) {
  return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

Result<LoadedKernel> load_pvh_elf(GuestMemory& memory, std::span<const uint8_t> image) {
  if (image.size() < sizeof(Elf64_Ehdr)) return bad_elf("the file is smaller than an ELF header");
  if (!looks_like_elf(image)) return bad_elf("bad magic (not an ELF file)");
  Elf64_Ehdr eh;
  std::memcpy(&eh, image.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return bad_elf("not a 64-bit ELF");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return bad_elf("not little-endian");
  if (eh.e_machine != EM_X86_64) return bad_elf("not an x86-64 ELF (e_machine " + std::to_string(eh.e_machine) + ")");
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) return bad_elf("not an executable");
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) return bad_elf("unexpected program header size");
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders) {
    return bad_elf("program header count " + std::to_string(eh.e_phnum) + " is out of range");
  }
  if (!within(eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), image.size())) {
    return bad_elf("the program header table runs past the end of the file");
  }

  std::vector<Elf64_Phdr> loads;
  EntryNotes notes;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, image.data() + eh.e_phoff + uint64_t{i} * sizeof ph, sizeof ph);
    if (ph.p_type == PT_NOTE) {
      if (!within(ph.p_offset, ph.p_filesz, image.size())) return bad_elf("a PT_NOTE segment runs past the end of the file");
      NV_TRY(scan_entry_notes(image.subspan(ph.p_offset, ph.p_filesz), notes));
      continue;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    const std::string which = "segment " + std::to_string(i);
    if (!within(ph.p_offset, ph.p_filesz, image.size())) return bad_elf(which + " runs past the end of the file");
    if (ph.p_filesz > ph.p_memsz) return bad_elf(which + " has a file size larger than its memory size");
    if (ph.p_paddr > UINT64_MAX - ph.p_memsz) return bad_elf(which + " wraps around the address space");
    if (ph.p_paddr < kKernelMinAddress) {
      return bad_elf(which + " loads at " + hex(ph.p_paddr) + ", below 1 MiB (reserved for boot data)");
    }
    if (!memory.contains(ph.p_paddr, ph.p_memsz)) {
      return bad_elf(which + " [" + hex(ph.p_paddr) + ", " + hex(ph.p_paddr + ph.p_memsz) +
                     ") does not fit in guest memory (" + hex(memory.size()) + " bytes)");
    }
    loads.push_back(ph);
  }
  if (loads.empty()) return bad_elf("no loadable segment");
  const uint64_t pvh_entry = notes.pvh_entry;
  if (pvh_entry == 0) return bad_elf("no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); only PVH ELF kernels boot");

  std::sort(loads.begin(), loads.end(), [](const Elf64_Phdr& a, const Elf64_Phdr& b) { return a.p_paddr < b.p_paddr; });
  for (size_t i = 1; i < loads.size(); ++i) {
    if (loads[i].p_paddr < loads[i - 1].p_paddr + loads[i - 1].p_memsz) {
      return bad_elf("segments overlap at " + hex(loads[i].p_paddr));
    }
  }
  LoadedKernel kernel;
  kernel.lowest_address = loads.front().p_paddr;
  kernel.end_address = loads.back().p_paddr + loads.back().p_memsz;
  auto loaded = [&loads](uint64_t address) {
    for (const Elf64_Phdr& ph : loads) {
      if (address >= ph.p_paddr && address - ph.p_paddr < ph.p_filesz) return true;
    }
    return false;
  };
  if (!loaded(pvh_entry)) return bad_elf("the PVH entry point " + hex(pvh_entry) + " is not inside a loaded segment");
  if (notes.user_entry != 0 && !loaded(notes.user_entry)) {
    return bad_elf("the nodevisor user entry point " + hex(notes.user_entry) + " is not inside a loaded segment");
  }

  if (notes.generation_gpa != 0 && (notes.generation_gpa % 8 != 0 || !memory.contains(notes.generation_gpa, 8))) {
    return bad_elf("the nodevisor generation address " + hex(notes.generation_gpa) + " is not an aligned address in guest RAM");
  }

  for (const Elf64_Phdr& ph : loads) {
    NV_TRY(memory.write(ph.p_paddr, image.subspan(ph.p_offset, ph.p_filesz)));
  }
  kernel.pvh_entry = pvh_entry;
  kernel.user_entry = notes.user_entry;
  kernel.generation_gpa = notes.generation_gpa;
  return kernel;
}

}  // namespace nodevisor::vmm::x86_64
