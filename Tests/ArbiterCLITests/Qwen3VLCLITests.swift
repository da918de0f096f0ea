// `arbiter run --prompt … --image …` on the tiny Qwen3-VL checkpoint with the family's default layout (qwen3-vl).
import Foundation
import Testing

@Suite("CLI Qwen3-VL")
struct Qwen3VLCLITests {
    static let model = Repository.model("tiny-qwen3-vl").path
    static let image = Repository.root.appendingPathComponent("GoldenData/images/qwen3-vl-test-45x29.png").path

    @Test("run with a prompt and an image: the default layout, the image span of 24 tokens, the next-token logits")
    func runWithImage() throws {
        let r = try CLI.run(["run", "--model", Self.model, "--prompt", "What is shown in this picture?",
                             "--image", Self.image, "--top", "2", "--cache", "blocks.1.hook_deepstack"])
        #expect(r.status == 0 && !r.signalled, "\(r)")
        #expect(r.stdout.contains("(layout qwen3-vl)"), "\(r)")
        #expect(r.stdout.contains("span image: "), "\(r)")
        #expect(r.stdout.contains("next-token logits at position"), "\(r)")
    }

    @Test("an image whose tokens the --ids do not hold is refused, naming the counts")
    func idsWithoutImageTokens() throws {
        try CLI.refuses(["run", "--model", Self.model, "--ids", "1,2,3", "--image", Self.image], "0 image tokens", "24")
    }
}
