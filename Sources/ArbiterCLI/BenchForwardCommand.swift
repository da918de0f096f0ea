// `arbiter bench-forward`: time one forward pass (used by Tools/bench.py; prints one JSON line).
import ArbiterData
import ArbiterModels
import ArbiterTensor
import ArgumentParser
import Dispatch
import Foundation

struct BenchForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-forward",
                                                    abstract: "Time forward passes over random token ids; prints JSON.")

    @Option(name: .long, help: "Hugging Face model folder.") var model: String
    @Option(name: .long, help: "Tokens per forward pass.") var tokens = 512
    @Option(name: .long, help: "Timed repeats (after one warm-up).") var repeats = 3
    @Option(name: .long, help: "Seed of the random ids.") var seed: UInt64 = 0
    @Option(name: .long, help: """
        Logits to compute: all (every position, returned as one [tokens, vocab] tensor, as a plain forward), \
        streamed (every position, handed over in vocabulary blocks of 4096 ids), or \
        last (the last position, as the analyses do).
        """)
    var logits = "all"
    @Flag(name: .long, help: """
        Run one forward per worker at once, each on one BLAS thread, as verify runs its items (and as its plan's \
        calibration times layers); report the wall time over the workers, seconds per forward.
        """)
    var sideBySide = false

    func validate() throws {
        guard ["all", "streamed", "last"].contains(logits) else {
            throw ValidationError("--logits must be 'all', 'streamed' or 'last', got '\(logits)'")
        }
        try CLILimits.check("--tokens", tokens, CLILimits.tokens)
        try CLILimits.check("--repeats", repeats, CLILimits.repeats)
    }

    func run() throws {
        let m = try loadModel(model)
        var rng = SplitMix64(seed: seed)
        let vocab = m.decoder.configuration.vocabularySize
        let ids = (0..<tokens).map { _ in Int(rng.next() % UInt64(vocab)) }
        let decoder = m.decoder
        let forward: () throws -> Void
        switch logits {
        case "streamed":
            forward = {
                // Every logit is computed (as for `all`); the blocks are only counted, like PyTorch's tensor
                // that the benchmark never reads.
                var columns = 0
                _ = try decoder.forward(ids: ids, logits: .all) { range, block in
                    guard block.rows == ids.count else { throw CLIError("streamed block has \(block.rows) rows") }
                    columns += range.count
                }
                guard columns == vocab else { throw CLIError("streamed logits covered \(columns) of \(vocab) ids") }
            }
        case "last": forward = { _ = try decoder.forward(ids: ids, logits: .last) }
        default: forward = { _ = try decoder.forward(ids: ids, logits: .all) }
        }
        let workers = sideBySide ? Parallel.workers : 1
        nonisolated(unsafe) let each = forward  // each worker runs its own forward (the decoder is read-only)
        let pass: () throws -> Void = sideBySide ? {
            let failure = NSLock()
            nonisolated(unsafe) var error: Error?
            BLAS.withSingleThread {
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    do { try Parallel.serially { try each() } } catch let e { failure.withLock { error = e } }
                }
            }
            if let error { throw error }
        } : forward
        try pass()
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            try pass()
            times.append((now() - start) / Double(workers))
        }
        let json: [String: Any] = ["seconds": times, "seconds_best": times.min() ?? 0,
                                   "peak_rss_bytes": peakResidentBytes(),
                                   "tokens": tokens, "logits": logits, "workers": workers]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
