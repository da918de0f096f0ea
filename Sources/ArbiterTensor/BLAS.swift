// The only Swift file that imports CBLAS: thin wrappers over OpenBLAS's sgemm.
import CBLAS
import Foundation

public enum BLAS {
    /// C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, with leading dimensions (strides between rows).
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {  // BLAS leaves C untouched for k == 0 only when beta == 1; make it explicit.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        var beta = beta
        if beta == 0 {
            // OpenBLAS (0.3.21, Zen kernels) clears C for beta = 0 with a scalar store loop (sgemm_beta: 7–8% of
            // an analysis run's profile); a memset (vectorised in glibc) then beta = 1 gives the same product
            // bit for bit (the kernel adds αAB into C either way). Measured: memset takes 6.4% instead — most
            // of the cost is writing C's cache lines, not the loop — so the gain is ~1–2%.
            if ldc == n {
                c.update(repeating: 0, count: m * n)
            } else {
                for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// Runs `body` with OpenBLAS on one thread, for callers that run independent problems on the cores
    /// themselves. Concurrent and nested uses share one saved setting, restored when the last of them ends.
    public static func withSingleThread<T>(_ body: () throws -> T) rethrows -> T {
        singleThread.enter()
        defer { singleThread.leave() }
        return try body()
    }

    private static let singleThread = SingleThreadScope()

    /// Number of threads OpenBLAS uses.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// Reference count of `BLAS.withSingleThread` scopes (the thread count is process-global).
private final class SingleThreadScope: @unchecked Sendable {
    private let lock = NSLock()
    private var depth = 0
    private var saved = 1

    func enter() {
        lock.withLock {
            if depth == 0 { saved = BLAS.threadCount; BLAS.threadCount = 1 }
            depth += 1
        }
    }

    func leave() {
        lock.withLock {
            depth -= 1
            if depth == 0 { BLAS.threadCount = saved }
        }
    }
}
