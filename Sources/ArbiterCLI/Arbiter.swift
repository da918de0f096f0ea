// `arbiter`: run multimodal LLMs with hooks and interventions, and check the claims of Instruction Anchors.
import ArbiterFormats
import ArbiterTensor
import ArgumentParser

@main
struct Arbiter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arbiter",
        abstract: "Run Hugging Face LLaVA-family models on the CPU with hook points, and test the claims of "
                  + "\"Instruction Anchors\".",
        version: ArbiterVersion.string,
        subcommands: [RunCommand.self, EvalCommand.self, VerifyCommand.self, DataCommand.self, LayoutCommand.self,
                      CompareCommand.self, HooksCommand.self, BenchForwardCommand.self, BenchSweepCommand.self,
                      BenchGemmCommand.self, MergeCommand.self, RankOverlapCommand.self])

    static func main() {
        Allocator.keepFreedMemory()
        main(nil)
    }
}
