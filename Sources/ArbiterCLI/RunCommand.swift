// `arbiter run`: one forward pass from the shell, optionally dumping activations in the golden layout.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import ArgumentParser
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on token ids and print the top next tokens; --dump writes activations (golden layout).")

    @Option(name: .long, help: "Hugging Face model folder (llama, qwen2, llava).") var model: String
    @Option(name: .long, help: "Token ids, e.g. 1,2,3 (for LLaVA: with the image token already expanded).") var ids: String
    @Option(name: .long, help: "Write input_ids, logits, per-layer hook_resid_post and attn.hook_pattern (and --cache hooks) to this HDF5 file.")
    var dump: String?
    @Option(name: .long, parsing: .upToNextOption, help: "Extra hooks to dump: names or patterns with * (e.g. 'blocks.*.hook_mlp_out').")
    var cache: [String] = []
    @Option(name: .long, help: "How many top next tokens to print.") var top = 5

    func run() throws {
        let m = try loadModel(model)
        let tokenIDs = try parseIDs(ids)
        let layers = m.decoder.layerCount
        var patterns = cache
        if dump != nil {
            patterns += (0..<layers).flatMap { ["blocks.\($0).hook_resid_post", "blocks.\($0).attn.hook_pattern"] }
            patterns.append("hook_logits")
        }
        let hooks = HookRun(cache: .patterns(patterns))
        do { try hooks.validate(against: m.hookNames, model: m.identifier) } catch { throw CLIError("\(error)") }
        let output: DecoderOutput
        do {
            if let llava = m as? LlavaModel {
                output = try llava.forward(ids: tokenIDs, pixelValues: nil, logits: .all, hooks: hooks)
            } else {
                output = try m.decoder.forward(ids: tokenIDs, logits: .all, hooks: hooks)
            }
        } catch { throw CLIError("\(error)") }
        if let logits = output.logits, logits.rows > 0 {
            let last = Array(logits.row(logits.rows - 1))
            let best = last.indices.sorted { last[$0] > last[$1] }.prefix(top)
            print("next-token logits at position \(logits.rows - 1): " + best.map { "\($0) (\(String(format: "%.4f", last[$0])))" }.joined(separator: ", "))
        }
        if let dump {
            let writer = try GoldenWriter(url: URL(fileURLWithPath: dump), modelID: m.identifier, modelType: m.modelType,
                                          source: "arbiter run", seed: 0, caseName: "cli")
            try writer.writeInputIDs(tokenIDs)
            for (name, tensor) in hooks.cache.sorted(by: { $0.key < $1.key }) {
                try writer.write(hook: GoldenComparison.datasetName(forHook: name), tensor: tensor)
            }
            try writer.commit()
            print("wrote \(hooks.cache.count + 1) datasets to \(dump)")
        }
    }
}
