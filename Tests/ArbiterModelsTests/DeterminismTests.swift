// Determinism: the same run twice gives bit-identical logits; 1 and 2 BLAS threads agree within a stated
// tolerance (checked in subprocesses, since the BLAS thread count is process-wide).
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Determinism")
struct DeterminismTests {
    @Test("the same forward twice is bit-identical (text and LLaVA)")
    func sameRunTwice() throws {
        let text = try ModelRegistry.load(Repository.model("tiny-qwen2"))
        let ids = [5, 17, 200, 3, 99, 42, 7]
        // OpenBLAS's last bits depend on its (process-wide) thread count, which analyses running in parallel
        // tests lower to 1: pin it for the pair of runs.
        let (t1, t2) = try BLAS.withSingleThread { (try text.decoder.forward(ids: ids).logits, try text.decoder.forward(ids: ids).logits) }
        #expect(t1 == t2)
        let golden = try GoldenActivations(url: Repository.activations.appendingPathComponent("tiny-llava/image-prompt.h5"))
        let llava = try #require(try ModelRegistry.load(Repository.model("tiny-llava")) as? LlavaModel)
        let p = try golden.tensor("pixel_values")
        let pixels = p.reshaped(Array(p.shape.dropFirst()))
        let (l1, l2) = try BLAS.withSingleThread {
            (try llava.forward(ids: golden.inputIDs(), pixelValues: pixels).logits, try llava.forward(ids: golden.inputIDs(), pixelValues: pixels).logits)
        }
        #expect(l1 == l2)
    }

    /// The `arbiter` executable built beside the test bundle.
    static var arbiter: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("arbiter")
    }

    func dump(threads: Int, kernelThreads: Int? = nil, to url: URL) throws {
        let process = Process()
        process.executableURL = Self.arbiter
        process.arguments = ["run", "--model", Repository.model("tiny-llama").path, "--ids", "1,5,9,200,300,17,2,8,64,33,12,400",
                             "--dump", url.path]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "\(threads)"
        if let kernelThreads { environment["ARBITER_KERNEL_THREADS"] = "\(kernelThreads)" }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test("1 and 2 BLAS threads agree", .enabled(if: FileManager.default.isExecutableFile(atPath: DeterminismTests.arbiter.path)))
    func blasThreads() throws {
        let tmp = try TemporaryFolder()
        let one = tmp.url.appendingPathComponent("one.h5"), two = tmp.url.appendingPathComponent("two.h5")
        try dump(threads: 1, to: one)
        try dump(threads: 2, to: two)
        let a = try GoldenActivations(url: one), b = try GoldenActivations(url: two)
        // OpenBLAS splits GEMMs across threads by output blocks, so each element keeps its summation order;
        // the bound allows for a kernel that splits the reduction (float32 rounding, ~1e-6 relative).
        let tolerance = Tolerance(atol: 1e-5, rtol: 1e-5, nmse: 1e-12, reason: "BLAS thread partitioning")
        for name in a.hookNames {
            let report = compare(try b.tensor(name), to: try a.tensor(name), tolerance: tolerance, label: "threads 2 vs 1: \(name)")
            #expect(report.passed, "\(report)")
        }
    }

    @Test("1 and 2 threads in the elementwise kernels give bit-identical activations",
          .enabled(if: FileManager.default.isExecutableFile(atPath: DeterminismTests.arbiter.path)))
    func kernelThreads() throws {
        let tmp = try TemporaryFolder()
        let one = tmp.url.appendingPathComponent("one.h5"), two = tmp.url.appendingPathComponent("two.h5")
        try dump(threads: 1, kernelThreads: 1, to: one)
        try dump(threads: 1, kernelThreads: 2, to: two)
        let a = try GoldenActivations(url: one), b = try GoldenActivations(url: two)
        // Softmax, norms and activations split rows (or elements) across threads; every row is computed by
        // the same code whatever the split, so the results must be identical, not just close.
        for name in a.hookNames {
            let same = try a.tensor(name) == b.tensor(name)
            #expect(same, "\(name) differs between ARBITER_KERNEL_THREADS=1 and 2")
        }
    }
}
