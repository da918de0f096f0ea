// `arbiter run`: one forward pass from the shell — from token ids or from a prompt (and image) — with
// optional interventions, printing the top next tokens and the prompt spans; `--dump` writes activations
// in the golden layout.
import ArbiterFormats
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import ArgumentParser
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on token ids or on a prompt (and image), with optional interventions.",
        discussion: """
        --prompt is split into lines: 4 lines are context, instruction, question, constraint (a leading \
        "Text context:" is dropped); 3 lines instruction, question, constraint (the paper's question1..3); \
        2 lines question, constraint; 1 line the question. --context/--instruction/--question/--constraint \
        override single pieces. The prompt layout comes from --layout, the model folder's prompt_layout.json, \
        or the model type's default.

        Interventions: --knockout "image->instruction@10-16" blocks attention from instruction tokens to image \
        tokens in layers 10–16 (information image → instruction); spans are image, context, instruction, \
        question, constraint, last, system, text (all but image), all; positions work too ("0-4,9->last@0-2", \
        "/heads=1,3" restricts heads). --block-heads "14.3,15.7" zeroes heads' outputs; --amplify-heads \
        "14.3x2.0" scales them; --scale-mlp "10-12x0" scales MLP outputs.
        """)

    @Option(name: .long,
            help: "Hugging Face model folder (model_type \(ModelRegistry.supportedTypes.joined(separator: ", "))).")
    var model: String
    @Option(name: .long, help: "Token ids, e.g. 1,2,3 (for LLaVA: with the image token already expanded).")
    var ids: String?
    @Option(name: .long, help: "Prompt text (see below); needs the folder's tokenizer.json.") var prompt: String?
    @Option(name: .long) var context: String?
    @Option(name: .long) var instruction: String?
    @Option(name: .long) var question: String?
    @Option(name: .long) var constraint: String?
    @Option(name: .long,
            help: ArgumentHelp(OptionHelp.image))
    var image: String?
    @Option(name: .long,
            help: ArgumentHelp(OptionHelp.layout))
    var layout: String?
    @Option(name: .long, help: "Attention knockout KEYS->QUERIES@LAYERS (repeatable).") var knockout: [String] = []
    @Option(name: .long, help: "Heads to block, LAYER.HEAD,…") var blockHeads: String?
    @Option(name: .long, help: "Heads to amplify, LAYER.HEADxFACTOR,…") var amplifyHeads: String?
    @Option(name: .long, help: "MLP outputs to scale, LAYERSxFACTOR (repeatable).") var scaleMlp: [String] = []
    @Option(name: .long,
            help: ArgumentHelp("Write input_ids, logits, per-layer hook_resid_post and attn.hook_pattern (and --cache "
                               + "hooks) to this HDF5 file."))
    var dump: String?
    @Option(name: .long, parsing: .upToNextOption,
            help: "Extra hooks to dump: names or patterns with * (e.g. 'blocks.*.hook_mlp_out').")
    var cache: [String] = []
    @Option(name: .long, help: "How many top next tokens to print.") var top = 5

    func validate() throws {
        let textual = prompt != nil || question != nil
        if (ids == nil) == !textual { throw ValidationError("give either --ids or --prompt/--question") }
        try CLILimits.check("--top", top, CLILimits.top)
        if blockHeads?.trimmingCharacters(in: .whitespaces).isEmpty == true {
            throw ValidationError("--block-heads is empty; give heads as LAYER.HEAD,… (e.g. 14.3,15.7)")
        }
        if amplifyHeads?.trimmingCharacters(in: .whitespaces).isEmpty == true {
            throw ValidationError("--amplify-heads is empty; give LAYER.HEADxFACTOR,… (e.g. 14.3x2.0)")
        }
        try CLIPaths.checkList("--block-heads", blockHeads)
        try CLIPaths.checkList("--amplify-heads", amplifyHeads)
        try CLIPaths.checkNotEmpty(["--model": model, "--image": image, "--layout": layout])
        try CLIPaths.checkFile("--image", image)
    }

    func run() throws {
        // The destination is checked before any work starts (and again when the file is committed).
        let inputs = [model] + (image.map { [$0] } ?? [])
        if let dump {
            try OutputSafety.checkFile(dump, kind: .dump, option: "--dump",
                                       inputs: inputs.map { URL(fileURLWithPath: $0) })
        }
        // Each intervention with the option and text it came from, so that a message can name them.
        var given: [(option: String, text: String, intervention: Intervention)] = []
        func parse(_ option: String, _ text: String, _ read: () throws -> [Intervention]) throws {
            do { given += try read().map { (option, text, $0) } } catch {
                throw CLIError("\(option) '\(text)': \(error)")
            }
        }
        for k in knockout { try parse("--knockout", k) { [try InterventionSyntax.knockout(k)] } }
        if let blockHeads {
            try parse("--block-heads", blockHeads) {
                [.blockHeads(try InterventionSyntax.heads(blockHeads), means: nil)]
            }
        }
        if let amplifyHeads {
            try parse("--amplify-heads", amplifyHeads) {
                try InterventionSyntax.amplifications(amplifyHeads).map { .amplifyHeads([$0.0], factor: $0.1) }
            }
        }
        for s in scaleMlp { try parse("--scale-mlp", s) { [try InterventionSyntax.mlpScale(s)] } }
        let interventions = given.map(\.intervention)

        let input: PreparedInput
        let m: any ArbiterModel
        var session: ModelSession? = nil
        if let ids, image == nil {
            let tokenIDs = try parseIDs(ids)
            m = try loadModel(model)
            let vocabulary = m.decoder.configuration.vocabularySize
            if let i = tokenIDs.firstIndex(where: { !(0..<vocabulary).contains($0) }) {
                throw CLIError("--ids: token id \(tokenIDs[i]) at position \(i) is outside the vocabulary "
                               + "(0..<\(vocabulary)) of \(model)")
            }
            input = PreparedInput(ids: tokenIDs, spans: try TokenSpans(tokenCount: tokenIDs.count), image: nil,
                                  text: "")
        } else {
            let chosen: PromptLayout?
            do { chosen = try layout.map(PromptLayout.named) } catch {
                throw CLIError("--layout \(layout ?? ""): \(error)")
            }
            if let image {
                // A text model has no image path: say so (from config.json alone) before asking for a tokenizer
                // it may not need.
                let type: String
                do { type = try ModelDirectory(URL(fileURLWithPath: model)).modelType } catch {
                    throw CLIError("cannot load model: \(error)")
                }
                // (An unknown type is left to the loader, whose error names config.json and the supported types.)
                guard ModelRegistry.family(of: type)?.takesImages ?? true else {
                    throw CLIError("--image \(image): \(model) is a \(type) model, which takes no images")
                }
            }
            do {
                let s = try ModelSession(directory: URL(fileURLWithPath: model), layout: chosen)
                let img = try image.map(readImage)
                do {
                    if let ids { input = try s.prepare(ids: try parseIDs(ids), image: img) }
                    else { input = try s.prepare(fields(), image: img) }
                } catch let e as FormatError where image != nil && e.file.hasPrefix("image ") {
                    // The image processors name the image by its size; the user knows it by its path.
                    throw CLIError("--image \(image!): \(e)")
                }
                session = s
                m = s.model
            } catch let e as CLIError { throw e } catch let e as ValidationError { throw e } catch {
                throw CLIError("\(error)")
            }
        }

        let layers = m.decoder.layerCount
        var patterns = cache
        if dump != nil {
            patterns += (0..<layers).flatMap { [HookName.block($0, .residPost), HookName.block($0, .pattern)] }
            patterns.append(HookName.logits)
            if input.image != nil { patterns.append(HookName.imageFeatures) }
        }
        // Each intervention and each --cache pattern checked against the model alone, so that a layer, head,
        // span or hook it does not have is reported with the option that named it.
        for g in given {
            do {
                _ = try InterventionSet([g.intervention]).hooks(for: m.decoder, hookNames: m.hookNames,
                                                                tokenCount: input.ids.count, spans: input.spans)
            } catch { throw CLIError("\(g.option) '\(g.text)': \(error)") }
        }
        for pattern in cache {
            do {
                _ = try InterventionSet([]).hooks(for: m.decoder, hookNames: m.hookNames, tokenCount: input.ids.count,
                                                  spans: input.spans, cache: .patterns([pattern]))
            } catch { throw CLIError("--cache '\(pattern)': \(error)") }
        }
        let output: DecoderOutput
        let hooks: HookRun
        do {
            hooks = try InterventionSet(interventions).hooks(for: m.decoder, hookNames: m.hookNames,
                                                             tokenCount: input.ids.count,
                                                             spans: input.spans, cache: .patterns(patterns))
            if let session {
                output = try session.run(input, logits: .all, hooks: hooks)
            } else {
                output = try m.decoder.forward(ids: input.ids, logits: .all, hooks: hooks)
            }
        } catch { throw CLIError("\(error)") }

        if !interventions.isEmpty { print("interventions: \(InterventionSet(interventions))") }
        if let session {
            print("prompt: \(input.ids.count) tokens (layout \(session.layout.name))")
            for name in input.spans.names {
                let ranges = try input.spans.ranges(name).map { "\($0.lowerBound)..<\($0.upperBound)" }
                    .joined(separator: ", ")
                print("  span \(name): \(ranges)")
            }
        }
        if let logits = output.logits, logits.rows > 0 {
            let last = Array(logits.row(logits.rows - 1))
            let best = last.indices.sorted { last[$0] > last[$1] }.prefix(top)
            let shown = best.map { id -> String in
                let token = session.flatMap { try? $0.tokenizer.decode([id]) }.map { " \"\($0)\"" } ?? ""
                return "\(id)\(token) (\(String(format: "%.4f", last[id])))"
            }
            print("next-token logits at position \(logits.rows - 1): " + shown.joined(separator: ", "))
        }
        if let dump {
            let writer = try GoldenWriter(url: URL(fileURLWithPath: dump), modelID: m.identifier,
                                          modelType: m.modelType,
                                          source: "arbiter run"
                                              + (interventions.isEmpty ? "" : "; \(InterventionSet(interventions))"),
                                          seed: 0, caseName: "cli", prompt: input.text.isEmpty ? nil : input.text,
                                          output: .dump)
            try writer.writeInputIDs(input.ids)
            var inputs = 1
            if let image = input.image, let family = m.images {
                // The golden layout: pixel values and the family's integer inputs as transformers takes them.
                try writer.write(hook: "pixel_values", tensor: family.goldenPixelValues(of: image))
                for (name, array) in image.integers.sorted(by: { $0.key < $1.key }) {
                    try writer.writeIntegers(name, array.values, shape: array.shape)
                }
                inputs += 1 + image.integers.count
            }
            for (name, tensor) in hooks.cache.sorted(by: { $0.key < $1.key }) {
                try writer.write(hook: GoldenComparison.datasetName(forHook: name), tensor: tensor)
            }
            try writer.commit()
            print("wrote \(hooks.cache.count + inputs) datasets to \(dump)")
        }
    }

    /// Reads the --image PNG; errors name the option and the path.
    func readImage(_ path: String) throws -> RGBImage {
        do { return try PNGImage.read(url: URL(fileURLWithPath: path)) } catch {
            throw CLIError("--image \(path): \(error)")
        }
    }

    /// Prompt pieces from --prompt lines and the single-piece options.
    func fields() throws -> PromptFields {
        var lines = (prompt ?? "").split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        var f = PromptFields(question: "")
        switch lines.count {
        case 0: break
        case 1: f.question = lines[0]
        case 2: f.question = lines[0]; f.constraint = lines[1]
        case 3: f.instruction = lines[0]; f.question = lines[1]; f.constraint = lines[2]
        case 4:
            if lines[0].hasPrefix("Text context:") {
                lines[0] = String(lines[0].dropFirst("Text context:".count)).trimmingCharacters(in: .whitespaces)
            }
            f.context = lines[0]; f.instruction = lines[1]; f.question = lines[2]; f.constraint = lines[3]
        default: throw CLIError("--prompt has \(lines.count) lines; want 1–4 (context, instruction, "
                                + "question, constraint)")
        }
        if let context { f.context = context }
        if let instruction { f.instruction = instruction }
        if let question { f.question = question }
        if let constraint { f.constraint = constraint }
        guard !f.question.isEmpty else { throw CLIError("the prompt has no question") }
        return f
    }
}
