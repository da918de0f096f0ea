// `arbiter layout check`: a prompt layout file against its JSON Schema and its own rules, and with --model, the
// prompt it builds for that model's tokenizer, span by span — where the spans the analyses cut at fall.
import ArbiterAnalyses
import ArbiterData
import ArbiterFormats
import ArbiterModels
import ArgumentParser
import Foundation

struct LayoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layout", abstract: "Check prompt layout files.", subcommands: [LayoutCheckCommand.self])
}

struct LayoutCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a prompt layout (schema, then rules); with --model, print a sample prompt's spans.",
        discussion: """
        The sample prompt is a short English item, or an item of --data (the first, or --item ID); each span is \
        printed with its token positions and tokens, and the first token of each answer candidate after the \
        layout's answer_prefix.
        """)

    @Argument(help: "A layout file, or a built-in name (\(PromptLayout.builtinNames.joined(separator: ", "))).")
    var layout: String

    @Option(name: .long, help: "Model folder: build a sample prompt with its tokenizer and image size.")
    var model: String?

    @Option(name: .long, help: "Dataset folder: the sample prompt is one of its items (needs --model).")
    var data: String?

    @Option(name: .long, help: "Id of the --data item to build (default: the first item with a question).")
    var item: String?

    func validate() throws {
        if data != nil && model == nil { throw ValidationError("--data needs --model") }
        if item != nil && data == nil { throw ValidationError("--item needs --data") }
    }

    func run() throws {
        let checked: PromptLayout
        do { checked = try PromptLayout.checked(layout) } catch { throw CLIError("\(error)") }
        let slots = checked.pieces.compactMap(\.slot)
        print("\(layout): layout '\(checked.name)' matches layout.schema.json and the layout rules "
              + "(\(checked.pieces.count) pieces; slots \(slots.joined(separator: ", ")))")
        guard let model else { return }
        let sample: ProbeItem
        do { sample = try sampleItem() } catch let error as CLIError { throw error } catch {
            throw CLIError("\(error)")
        }
        do {
            let session = try ModelSession(directory: URL(fileURLWithPath: model), layout: checked)
            // The built-in sample takes a plain grey image of the model's size; a dataset item keeps its own.
            let image = data != nil ? sample.image
                : session.imageSize.map { RGBImage(width: $0, height: $0, red: 128, green: 128, blue: 128) }
            let input = try session.prepare(sample.fields, image: image)
            print("sample prompt (\(sample.id)): \(input.ids.count) tokens with \(model)")
            let width = input.spans.names.map(\.count).max() ?? 0
            let starts = try Dictionary(uniqueKeysWithValues: input.spans.names.map {
                ($0, try input.spans.positions($0).first ?? .max)
            })
            for name in input.spans.names.sorted(by: { starts[$0]! < starts[$1]! }) {
                let positions = try input.spans.positions(name)
                let ranges = try input.spans.ranges(name).map { "\($0.lowerBound)..<\($0.upperBound)" }
                let name = name.padding(toLength: width, withPad: " ", startingAt: 0)
                let tokens = shown(positions.map { input.ids[$0] }, session)
                print("  \(name)  \(ranges.joined(separator: ", "))  \(tokens)")
            }
            let firsts = try (sample.instructed + sample.competitor).map { answer in
                let id = try session.firstTokens(of: [answer], after: input).first
                guard let id else { return "\(answer) → no token" }
                return "\(answer) → \(id) \(quoted(session.tokenizer.token(of: id) ?? "?"))"
            }
            print("  answers (first token after answer_prefix \(quoted(checked.answerPrefix))): "
                  + firsts.joined(separator: "; "))
        } catch let error as CLIError { throw error } catch { throw CLIError("\(model): \(error)") }
    }

    /// The --data item asked for, or a short English sample.
    func sampleItem() throws -> ProbeItem {
        guard let data else {
            let fields = PromptFields(context: "The ball is red.", instruction: "Answer from the image.",
                                      question: "What color is the ball?", constraint: "Answer with one word.")
            return ProbeItem(id: "built-in sample", kind: "conflict", target: .image, fields: fields, image: nil,
                             instructed: ["red"], competitor: ["blue"])
        }
        let set = try ConflictDataset.load(directory: URL(fileURLWithPath: data))
        let items = try ProbeItems.make(set)
        if let item {
            guard let found = items.first(where: { $0.id == item }) else {
                throw CLIError("\(data): no item '\(item)' (items without an instruction-free answer are skipped)")
            }
            return found
        }
        guard let first = items.first else { throw CLIError("\(data): no item to build a prompt from") }
        return first
    }

    /// Tokens as the model sees them; a run of one token repeated (the image) is shown once with its count.
    func shown(_ ids: [Int], _ session: ModelSession) -> String {
        let tokens = ids.map { session.tokenizer.token(of: $0) ?? "#\($0)" }
        if tokens.count > 1, Set(tokens).count == 1 { return "\(quoted(tokens[0])) × \(tokens.count)" }
        let head = tokens.prefix(24).map(quoted).joined(separator: " ")
        return tokens.count > 24 ? head + " … (\(tokens.count) tokens)" : head
    }

    func quoted(_ token: String) -> String { token.debugDescription }
}
