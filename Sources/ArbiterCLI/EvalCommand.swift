// `arbiter eval`: modality-following ratio per instruction target with counts and the share of third answers,
// and consistent and unimodal accuracy — baseline passes only, with a progress display.
import ArbiterAnalyses
import ArbiterData
import ArbiterModels
import ArgumentParser
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
                                                    abstract: "Modality-following ratio per target, consistent and "
                                                              + "unimodal accuracy.")

    @Option(name: .long, help: "Model folder.") var model: String
    @Option(name: .long, help: "Dataset folder (dataset.json + images); default: generated from --seed.")
    var data: String?
    @Option(name: .long, help: "Items to generate when no --data is given.") var count = 240
    @Option(name: .long) var seed: UInt64 = 2602_03677
    @Option(name: .long, help: "Only items whose instruction paraphrase is in this split (train | heldout).")
    var split: String?
    @Flag(name: .long, help: "Skip bad items (and say how many) instead of stopping at the first.")
    var skipBadItems = false
    @Flag(name: .long, help: "Also the modality-following ratio of each instruction paraphrase (id, split, counts).")
    var byInstruction = false
    @Option(name: .long,
            help: ArgumentHelp(OptionHelp.layoutWithDefault))
    var layout: String?
    @Flag(name: .long,
          help: "Score the items the model can read even when others are unreadable or more than 10% are skipped.")
    var keepGoing = false

    func validate() throws {
        try CLILimits.check("--count", count, CLILimits.items)
        try CLIPaths.checkNotEmpty(["--model": model, "--data": data])
    }

    func run() throws {
        let progress = Progress()
        do {
            let session = try ModelSession(directory: URL(fileURLWithPath: model),
                                           layout: try layout.map(PromptLayout.named))
            var set: ConflictSet
            if let data {
                set = try ConflictDataset.load(directory: URL(fileURLWithPath: data),
                                               options: LoadOptions(skipBadItems: skipBadItems))
            } else {
                var g = GeneratorConfiguration()
                if let size = session.imageSize { g.imageSize = size }
                set = ConflictSet(source: "generated",
                                  items: ConflictGenerator(seed: seed, configuration: g).generate(count: count),
                                  imageRoot: nil)
            }
            if let split {
                guard let s = InstructionSplit(rawValue: split) else {
                    throw ValidationError("--split must be train or heldout")
                }
                set.items = set.items.filter { $0.instructionSplit == nil || $0.instructionSplit == s }
            }
            let probes = try ProbeItems.make(set)
            guard !probes.isEmpty else {   // a ratio over no item is NaN, not a result
                let source = data.map { "\(URL(fileURLWithPath: $0).appendingPathComponent("dataset.json").path)" }
                throw CLIError("nothing to score in \(source ?? "--count \(count)"): \(set.items.count) items"
                    + (set.skipped.isEmpty ? "" : " after skipping \(set.skipped.count) bad ones")
                    + (set.items.isEmpty ? "" : ", none with an instruction and a competing answer"))
            }
            let (samples, skippedItems) = try SamplePreparation.prepare(probes, session: session,
                                                                        policy: ItemPolicy(keepGoing: keepGoing))
            let skipped = skippedItems.map(\.description)
            var scores: [FollowingScore] = []
            for (i, s) in samples.enumerated() {
                let out = try session.run(s.input, logits: .last)
                scores.append(FollowingScore(logits: Array(out.logits!.row(0)), instructed: s.instructed,
                                             competitor: s.competitor))
                if (i + 1) % 10 == 0 || i + 1 == samples.count { progress.say("scored \(i + 1)/\(samples.count)") }
            }
            progress.finish()
            let r = ModalityFollowing.measure(samples, scores: scores, seed: seed)
            print("\(session.model.identifier) on \(data ?? "generated (\(count) items, seed \(seed))")"
                  + "\(split.map { ", \($0) instructions" } ?? "")")
            for t in ["image", "text", "overall"] {
                guard let e = r.ratio[t], let c = r.counts[t], c[1] > 0 else { continue }
                print("  MFR follow-\(t): \(e)  (\(c[0])/\(c[1]))")
                if let third = r.thirdAnswers[t], let n = r.thirdCounts[t] {
                    print("    third answers: \(third)  (\(n[0])/\(n[1]) top tokens start neither modality's answer)")
                }
            }
            for (kind, e) in r.accuracy.sorted(by: { $0.key < $1.key }) { print("  accuracy \(kind): \(e)") }
            if byInstruction { printByInstruction(set: set, samples: samples, scores: scores) }
            let dataSkipped = set.skipped.count
            if dataSkipped + skipped.count > 0 {
                print("  skipped \(dataSkipped + skipped.count) items:")
                let reasons = set.skipped.map { "\($0)" } + skipped
                for reason in reasons.prefix(10) { print("    \(reason)") }
                if reasons.count > 10 { print("    … and \(reasons.count - 10) more") }
            }
        } catch let e as ValidationError { throw e } catch { throw CLIError("\(error)") }
    }

    /// The `--by-instruction` table: one line per paraphrase.
    private func printByInstruction(set: ConflictSet, samples: [AnalysisSample], scores: [FollowingScore]) {
        let rows = ModalityFollowing.byInstruction(zip(samples, scores).map { ($0.id, $0.kind, $1.follows) },
                                                   items: set.items)
        guard !rows.isEmpty else {
            print("  (no conflict item names its instruction paraphrase)")
            return
        }
        print("  by instruction paraphrase:")
        for r in rows {
            let id = r.id.padding(toLength: 14, withPad: " ", startingAt: 0)
            let split = (r.split ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0)
            print("    \(id) \(split) \(String(format: "%.3f", r.ratio))  (\(r.follows)/\(r.total))  \(r.text)")
        }
    }
}
