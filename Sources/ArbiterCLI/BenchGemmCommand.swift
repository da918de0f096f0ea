// `arbiter bench-gemm`: time one weight product, y[rows, out] = x[rows, in] · Wᵀ, the way the model layers run
// it (`linearInto`, all cores), for Tools/bench.py's `gemm` section; prints one JSON line.
import ArbiterData
import ArbiterModels
import ArbiterTensor
import ArgumentParser
import Foundation

struct BenchGemmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-gemm",
        abstract: "Time a weight matrix product (random f32 or bf16 weights, f32 or bf16 compute); prints JSON.")

    @Option(name: .customLong("in"), help: "Input features (columns of W).") var inFeatures = 4096
    @Option(name: .customLong("out"), help: "Output features (rows of W).") var outFeatures = 4096
    @Option(name: .long, help: "Rows of x (tokens).") var rows = 64
    @Option(name: .long, help: "Stored dtype of the weights: f32 or bf16.") var weights = "f32"
    @Option(name: .long, help: "Arithmetic: f32 (bf16 weights widened) or bf16 (AVX512-BF16 when present).")
    var compute = "f32"
    @Option(name: .long, help: "Timed repeats (after one warm-up); the median is reported.") var repeats = 7
    @Option(name: .long, help: "Seed of the random values.") var seed: UInt64 = 0

    /// Largest weight matrix built: 2^28 elements (1 GB of f32), beyond any 7B-class layer.
    static let maximumElements = 1 << 28

    func validate() throws {
        guard ["f32", "bf16"].contains(weights) else {
            throw ValidationError("--weights must be f32 or bf16, got '\(weights)'")
        }
        guard ComputePrecision(rawValue: compute) != nil else {
            throw ValidationError("--compute must be f32 or bf16, got '\(compute)'")
        }
        try CLILimits.check("--in", inFeatures, 1...(1 << 16))
        try CLILimits.check("--out", outFeatures, 1...(1 << 20))
        try CLILimits.check("--rows", rows, CLILimits.tokens)
        try CLILimits.check("--repeats", repeats, CLILimits.repeats)
        guard inFeatures * outFeatures <= Self.maximumElements,
              rows * max(inFeatures, outFeatures) <= Self.maximumElements else {
            throw ValidationError("--in × --out and --rows × features must stay ≤ \(Self.maximumElements) elements")
        }
    }

    func run() throws {
        var rng = SplitMix64(seed: seed)
        func uniform() -> Float { Float(Double(rng.next() >> 11) * 0x1p-53 * 2 - 1) }
        let x = (0..<(rows * inFeatures)).map { _ in uniform() }
        let values = Tensor(shape: [outFeatures, inFeatures],
                            scalars: (0..<(outFeatures * inFeatures)).map { _ in uniform() })
        var weight = StoredTensor(name: "w", values)
        if weights == "bf16" || compute == "bf16" {
            // bf16 weights as a checkpoint holds them; unmarked unless the compute is bf16.
            let rounded = weight.forBFloat16Compute()!
            weight = StoredTensor(name: "w", dtype: .bfloat16, shape: rounded.shape, bytes: rounded.bytes,
                                  owner: Box(rounded), computesInBFloat16: compute == "bf16")
        }
        var out = [Float](repeating: 0, count: rows * outFeatures)
        let product = {
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer {
                    linearInto(x: xp.baseAddress!, n: rows, weight: weight, out: $0.baseAddress!)
                }
            }
        }
        product()
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            product()
            times.append(now() - start)
        }
        let median = times.sorted()[times.count / 2]
        let flops = 2.0 * Double(rows) * Double(inFeatures) * Double(outFeatures)
        let path = weight.computesInBFloat16 && BFloat16GEMM.isAvailable ? "avx512bf16"
            : weight.dtype == .bfloat16 ? "widen+sgemm" : "sgemm"
        let json: [String: Any] = ["seconds": times, "seconds_median": median, "gflops_median": flops / median / 1e9,
                                   "path": path, "rows": rows, "in": inFeatures, "out": outFeatures]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Keeps the rounded tensor's storage alive under the re-marked view.
    private final class Box: @unchecked Sendable {  // immutable
        let tensor: StoredTensor
        init(_ tensor: StoredTensor) { self.tensor = tensor }
    }
}
