// `arbiter bench-forward`: time one forward pass (used by Tools/bench.py; prints one JSON line).
import ArbiterData
import ArbiterModels
import ArgumentParser
import Foundation

struct BenchForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-forward",
                                                    abstract: "Time forward passes over random token ids; prints JSON.")

    @Option(name: .long, help: "Hugging Face model folder.") var model: String
    @Option(name: .long, help: "Tokens per forward pass.") var tokens = 512
    @Option(name: .long, help: "Timed repeats (after one warm-up).") var repeats = 3
    @Option(name: .long, help: "Seed of the random ids.") var seed: UInt64 = 0
    @Option(name: .long, help: "Logits to compute: all (every position, as a plain forward) or last (the last position, as the analyses do).")
    var logits = "all"

    func run() throws {
        let positions: LogitPositions
        switch logits {
        case "all": positions = .all
        case "last": positions = .last
        default: throw ValidationError("--logits must be 'all' or 'last', got '\(logits)'")
        }
        let m = try loadModel(model)
        var rng = SplitMix64(seed: seed)
        let vocab = m.decoder.configuration.vocabularySize
        let ids = (0..<tokens).map { _ in Int(rng.next() % UInt64(vocab)) }
        _ = try m.decoder.forward(ids: ids, logits: positions)
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            _ = try m.decoder.forward(ids: ids, logits: positions)
            times.append(now() - start)
        }
        let json: [String: Any] = ["seconds": times, "seconds_best": times.min() ?? 0, "peak_rss_bytes": peakResidentBytes(),
                                   "tokens": tokens, "logits": logits]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
