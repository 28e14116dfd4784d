#if canImport(Glibc)
import Glibc
#endif

/// glibc malloc settings for a long-running gateway.
///
/// By default glibc gives memory back to the kernel as soon as 128 KiB are free at
/// the top of a heap, and serves blocks over a (dynamic) threshold with fresh
/// `mmap`s. A session listing builds and frees ~15,000 small jansson values and a
/// few 256 KiB buffers per page, so each page grew the heap again from page
/// faults: 14 % of a listing's CPU (perf, bench/results/PROFILE.md §4). Keeping up
/// to 8 MiB free per arena, and serving blocks up to 1 MiB from the heap, made a
/// 10-page listing of 9,950 sessions ~20 % faster (43 -> 35 ms) without changing
/// memory per idle session. Called once, before any thread starts.
enum MallocTuning {
    /// `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD` from glibc's `<malloc.h>`, which the
    /// Glibc module does not import.
    private static let trimThreshold: Int32 = -1
    private static let mmapThreshold: Int32 = -3

    static func apply() {
        #if canImport(Glibc)
        // Looked up at run time for the same reason; absent on other C libraries.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(trimThreshold, 8 << 20)
        _ = mallopt(mmapThreshold, 1 << 20)
        #endif
    }
}
