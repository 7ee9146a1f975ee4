#pragma once
// Host memory of a training process.

namespace powertrain::train {

/// Makes glibc keep freed memory in the process instead of handing it back to
/// the kernel: no allocation gets an mmap of its own, and free memory at the
/// heap's top is returned only above 2 GiB. A training step frees and
/// allocates the same activations of tens of MB every step; by default glibc
/// unmaps every block over 32 MiB (and trims the heap's top), and the next step
/// takes a page fault per 4 KiB to map it again: a quarter of the CPU time of
/// a large batch on the CPU. The process keeps its peak heap instead.
/// Process-wide, applied once; returns false where the C library does not
/// take the settings (not glibc).
bool keep_freed_memory();

/// The same settings as glibc's environment variables
/// ("MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=..."), for a child process that
/// should run with the allocator this process runs with (the benchmark's
/// Python side).
const char* kept_memory_environment();

}  // namespace powertrain::train
