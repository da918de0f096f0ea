import ArbiterModels
import ArgumentParser

@main
struct Arbiter: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "arbiter", abstract: "Run multimodal LLMs and test the claims of Instruction Anchors.")
}
