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

    func run() throws {
        let m = try loadModel(model)
        var rng = SplitMix64(seed: seed)
        let vocab = m.decoder.configuration.vocabularySize
        let ids = (0..<tokens).map { _ in Int(rng.next() % UInt64(vocab)) }
        _ = try m.decoder.forward(ids: ids, logits: .all)
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            _ = try m.decoder.forward(ids: ids, logits: .all)
            times.append(now() - start)
        }
        let json: [String: Any] = ["seconds": times, "seconds_best": times.min() ?? 0, "peak_rss_bytes": peakResidentBytes(),
                                   "tokens": tokens]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
