// `arbiter data generate|check`: the synthetic conflict benchmark and dataset checks.
import ArbiterData
import ArbiterFormats
import ArbiterTokenizers
import ArgumentParser
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Generate and check modality-conflict datasets.",
        subcommands: [DataGenerateCommand.self, DataCheckCommand.self])
}

struct DataGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate the synthetic conflict benchmark: DIR/dataset.json and DIR/images/<id>.png.")

    @Option(name: .long, help: "Number of items.")
    var count: Int

    @Option(name: .long, help: "Seed (the same seed gives the same bytes).")
    var seed: UInt64

    @Option(name: .long, help: "Output folder: new, empty, or an earlier generated dataset (replaced atomically).")
    var out: String

    @Option(name: .long, help: "Image side in pixels (16...1024).")
    var imageSize: Int = 32

    @Option(name: .long,
            help: "Kind weights, e.g. conflict=0.65,consistent=0.15,no_instruction=0.1,image_only=0.05,text_only=0.05.")
    var mix: String?

    @Option(name: .long, help: "Comma-separated tasks (color, shape, count, position); default all.")
    var tasks: String?

    @Option(name: .long, help: "Percentage of images with a noisy background.")
    var noisyPercent: Int = 50

    @Flag(name: .long, help: "Use only the train instruction paraphrases.")
    var trainInstructionsOnly = false

    @Flag(name: .long, help: "Give half of the instructed items a composed training paraphrase (training data).")
    var composedInstructions = false

    func validate() throws {
        try CLILimits.check("--count", count, CLILimits.items)
        // Each number checked alone by the generator's own rules, so that the message names its option.
        for (option, set) in [("--image-size", { (c: inout GeneratorConfiguration) in c.imageSize = imageSize }),
                              ("--noisy-percent", { $0.noisyBackgroundPercent = noisyPercent })] {
            var probe = GeneratorConfiguration()
            set(&probe)
            do { try probe.validate() } catch { throw ValidationError("\(option): \(error)") }
        }
    }

    func run() throws {
        try OutputSafety.checkFolder(out, kind: .dataset, option: "--out")
        var configuration = GeneratorConfiguration(imageSize: imageSize, noisyBackgroundPercent: noisyPercent,
                                                   includeHeldoutInstructions: !trainInstructionsOnly,
                                                   composedInstructions: composedInstructions)
        do {
            if let mix = try CLILimits.mix(mix) { configuration.mix = mix }
            if let tasks {
                configuration.tasks = try tasks.split(separator: ",").map { name in
                    let trimmed = name.trimmingCharacters(in: .whitespaces)
                    guard let task = ConflictTask(rawValue: trimmed) else {
                        let known = ConflictTask.allCases.map(\.rawValue).joined(separator: ", ")
                        throw GeneratorError("--tasks: unknown task '\(trimmed)' (tasks: \(known))")
                    }
                    return task
                }
                if configuration.tasks.isEmpty { throw GeneratorError("--tasks '\(tasks)' selects no task") }
            }
            try configuration.validate()
        } catch let error as GeneratorError {
            throw ValidationError(error.description)
        }
        let items = ConflictGenerator(seed: seed, configuration: configuration).generate(count: count)
        do {
            try ConflictDataset.write(items: items, to: URL(fileURLWithPath: out),
                                      generator: .init(seed: seed, configuration: configuration), option: "--out")
        } catch let error as OutputError {
            throw error
        } catch {
            throw CLIError("cannot write the dataset: \(error)")
        }
        let set = ConflictSet(source: out, items: items, imageRoot: nil)
        print("wrote \(items.count) items to \(out)")
        printCounts(set)
    }
}

struct DataCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load a dataset, check every item, and print counts per kind, task and target and any bad items.",
        discussion: "--data: dataset.json meets dataset.schema.json first (every problem listed), then the item rules.")

    @Option(name: .long, help: "An Arbiter dataset folder (with dataset.json).")
    var data: String?

    @Option(name: .long, help: "A paper conflict set JSON (v3_following_{vision,text}_*.json).")
    var paperSet: String?

    @Option(name: .long, help: "An MC² JSON (mc2_evaluate_final.json).")
    var mc2: String?

    @Option(name: .long, help: "Image folder for --paper-set / --mc2.")
    var images: String?

    @Option(name: .long, help: "tokenizer.json: also check that image and text candidates differ in their first token.")
    var tokenizer: String?

    @Flag(name: .long, help: "Skip bad items (and list them) instead of stopping at the first.")
    var skipBadItems = false

    func validate() throws {
        guard [data, paperSet, mc2].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --data, --paper-set, --mc2")
        }
        try CLIPaths.checkNotEmpty(["--data": data, "--paper-set": paperSet, "--mc2": mc2, "--images": images,
                                    "--tokenizer": tokenizer])
        try CLIPaths.checkFile("--paper-set", paperSet)
        try CLIPaths.checkFile("--mc2", mc2)
        try CLIPaths.checkFile("--tokenizer", tokenizer)
    }

    func run() throws {
        if let data { try checkDatasetSchema(data) }
        let options = LoadOptions(skipBadItems: skipBadItems)
        let imageFolder = images.map { URL(fileURLWithPath: $0) }
        var set: ConflictSet
        do {
            if let data {
                set = try ConflictDataset.load(directory: URL(fileURLWithPath: data), options: options)
            } else if let paperSet {
                set = try PaperConflictSet.load(json: URL(fileURLWithPath: paperSet), imageFolder: imageFolder,
                                                options: options)
            } else {
                set = try MC2Benchmark.load(json: URL(fileURLWithPath: mc2 ?? ""), imageFolder: imageFolder,
                                            options: options)
            }
            if let tokenizer {
                try FileCheck.regularFile(URL(fileURLWithPath: tokenizer))  // a named pipe would block the read
                let t = try Tokenizer(url: URL(fileURLWithPath: tokenizer))
                set = try set.validateCandidates(tokenizer: t, options: options)
            }
        } catch {
            throw CLIError("\(error)")
        }
        print("\(set.source): \(set.items.count) items, \(set.skippedCount) skipped, \(set.warnings.count) warnings")
        printCounts(set)
        for problem in set.skipped { print("skipped \(problem)") }
        for problem in set.warnings.prefix(20) { print("warning \(problem)") }
        if set.warnings.count > 20 { print("… and \(set.warnings.count - 20) more warnings") }
    }
}

private func printCounts(_ set: ConflictSet) {
    let counts = set.counts
    for (title, table) in [("kind", counts.kinds), ("task", counts.tasks), ("target", counts.targets)] {
        let row = table.keys.sorted().map { "\($0)=\(table[$0]!)" }.joined(separator: " ")
        print("  \(title): \(row)")
    }
}
