// `arbiter bench-sweep`: time a knockout sweep (7 edge kinds × every layer window) with and without
// resume-from-layer, or measure the peak memory of a fully cached vs a filtered run. Prints one JSON line
// (used by Tools/bench.py).
import ArbiterAnalyses
import ArbiterData
import ArbiterModels
import ArgumentParser
import Foundation

struct BenchSweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-sweep",
                                                    abstract: "Time knockout sweeps with and without resume, or cache "
                                                              + "memory; prints JSON.")

    @Option(name: .long, help: "Model folder (LLaVA-format, with tokenizer.json).") var model: String
    @Option(name: .long, help: "Generated conflict items to sweep over.") var count = 16
    @Option(name: .long, help: "sweep | cache-full | cache-filtered") var mode = "sweep"

    func validate() throws {
        try CLILimits.check("--count", count, CLILimits.items)
        guard ["sweep", "cache-full", "cache-filtered"].contains(mode) else {
            throw ValidationError("--mode must be sweep, cache-full or cache-filtered, got '\(mode)'")
        }
    }

    func run() throws {
        let session = try ModelSession(directory: URL(fileURLWithPath: model))
        var g = GeneratorConfiguration()
        if let size = session.imageSize { g.imageSize = size }
        let set = ConflictSet(source: "bench",
                              items: ConflictGenerator(seed: 7, configuration: g).generate(count: count * 3),
                              imageRoot: nil)
        let samples = try ProbeItems.make(set).filter { $0.kind == "conflict" }.prefix(count)
            .compactMap { try? AnalysisSample($0, session: session) }
        let runner = AnalysisRunner(session: session)
        switch mode {
        case "sweep":
            let baselines = try samples.map { try runner.baseline($0, keepPatterns: false) }
            func sweep(resume: Bool) throws -> Double {
                let start = now()
                for (i, s) in samples.enumerated() {
                    for edge in FlowEdge.paperEdges {
                        guard (try? s.input.spans.positions(edge.keys))?.isEmpty == false else { continue }
                        for layer in 0..<runner.layers {
                            let w = InformationFlow.window(around: layer,
                                                           width: InformationFlow.defaultWindow(layers: runner.layers),
                                                           layers: runner.layers)
                            let ko = InterventionSet([.knockout(keys: .span(edge.keys), queries: .span(edge.queries),
                                                                layers: w, heads: nil)])
                            _ = try runner.score(s, baseline: baselines[i], interventions: ko,
                                                 startLayer: resume ? w[0] : 0)
                        }
                    }
                }
                return now() - start
            }
            let full = try sweep(resume: false), resumed = try sweep(resume: true)
            try emit(["samples": samples.count, "layers": runner.layers, "seconds_full": full,
                      "seconds_resume": resumed])
        case "cache-full", "cache-filtered":
            let hooks = HookRun(cache: mode == "cache-full" ? .all : .names([HookName.block(0, .residPost)]))
            let before = peakResidentBytes()
            for s in samples { _ = try session.run(s.input, logits: .last, hooks: hooks) }
            try emit(["mode": mode, "cached_tensors": hooks.cache.count, "peak_rss_bytes": peakResidentBytes(),
                      "rss_before_bytes": before])
        default:
            throw ValidationError("--mode must be sweep, cache-full or cache-filtered")
        }
    }

    func emit(_ object: [String: Any]) throws {
        print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                     as: UTF8.self))
    }
}

import ArbiterInterventions
