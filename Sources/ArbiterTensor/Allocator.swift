// glibc's allocator settings for long analysis runs.
import CKernels

public enum Allocator {
    /// Keeps freed memory in the process instead of returning it to the kernel at once. An analysis run allocates
    /// and frees the same few-hundred-kilobyte tensors millions of times, on several threads; with glibc's
    /// defaults the heaps shrink (`brk`, `madvise`, whole thread heaps unmapped) and grow again, and every page
    /// is faulted in and zeroed anew: on `arbiter verify` of a control, 1.9 million page faults and 6 s of system
    /// time out of 68 s of CPU. Allocations below 32 MiB (glibc's largest mmap threshold on 64-bit) from the
    /// heap, heaps trimmed only past 1 GiB free, and grown and shrunk with 64 MiB to spare: 0.16 million
    /// faults and 0.7 s (measured with the same settings as environment variables). The numbers do not change,
    /// only where memory comes from. Called by the `arbiter` command and the claim tests; a no-op where the C
    /// library is not glibc.
    public static func keepFreedMemory() {
        arbiter_keep_freed_memory(32 << 20, 1 << 30, 64 << 20)
    }
}
