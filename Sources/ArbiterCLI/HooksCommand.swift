// `arbiter hooks`: list a model's hook names in forward order.
import ArbiterModels
import ArgumentParser

struct HooksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hooks",
                                                    abstract: "List a model's hook points in forward order.")

    @Option(name: .long, help: "Hugging Face model folder.")
    var model: String

    @Option(name: .long, help: "Only names matching this pattern (* is a wildcard).")
    var filter: String?

    func validate() throws {
        try CLIPaths.checkNotEmpty(["--model": model])
    }

    func run() throws {
        let m = try loadModel(model)
        for name in m.hookNames where filter.map({ wildcardMatch(pattern: $0, name) }) ?? true { print(name) }
    }
}
