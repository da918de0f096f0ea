// Every number typed on the command line is range-checked at parse time: a clean usage error (exit 64), never
// a crash, a hang or an allocation of what the number asks for.
import Foundation
import Testing

@Suite("CLI option validation")
struct OptionValidationTests {
    static let llama = Repository.model("tiny-llama").path
    static let llava = Repository.model("tiny-llava").path

    static let cases: [([String], String)] = [
        (["run", "--model", llama, "--ids", "1,2", "--top=-1"], "--top -1 is out of range"),
        (["run", "--model", llama, "--ids", "1,2", "--top", "0"], "--top 0 is out of range"),
        (["run", "--model", llama, "--ids", "1,2", "--top", "9223372036854775807"], "out of range"),
        (["run", "--model", llama, "--ids", "1,2", "--block-heads", ""], "--block-heads is empty"),
        (["run", "--model", llama, "--ids", "1,2", "--amplify-heads", " "], "--amplify-heads is empty"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "0-9223372036854775806->last@0"], "outside 0…"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "0-100000000000->last@0"], "outside 0…"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "0->last@0-100000000000"], "outside 0…"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "0->last@-5"], "increasing range"),
        (["run", "--model", llama, "--ids", "1,2", "--block-heads=-1.0"], "must be in 0…"),
        (["run", "--model", llama, "--ids", "1,2", "--amplify-heads", "0.0xnan"], "finite factor"),
        (["run", "--model", llama, "--ids", "1,2", "--scale-mlp", "0xinf"], "finite factor"),
        (["verify", "--model", llava, "--count=-5"], "--count -5 is out of range"),
        (["verify", "--model", llava, "--count", "0"], "--count 0 is out of range"),
        (["verify", "--model", llava, "--count", "1000000000"], "--count 1000000000 is out of range"),
        (["verify", "--model", llava, "--random-sets", "1000000000"], "--random-sets 1000000000 is out of range"),
        (["verify", "--model", llava, "--random-sets=-1"], "--random-sets -1 is out of range"),
        (["verify", "--model", llava, "--count", "2.5"], "--count"),
        (["eval", "--model", llava, "--count", "0"], "--count 0 is out of range"),
        (["eval", "--model", llava, "--count=-3"], "--count -3 is out of range"),
        (["data", "generate", "--count", "1000000000", "--seed", "1", "--out", "x"], "--count 1000000000 is out of range"),
        (["data", "generate", "--count=-1", "--seed", "1", "--out", "x"], "--count -1 is out of range"),
        (["bench-forward", "--model", llama, "--tokens=-1"], "--tokens -1 is out of range"),
        (["bench-forward", "--model", llama, "--repeats", "0"], "--repeats 0 is out of range"),
        (["bench-forward", "--model", llama, "--logits", "some"], "--logits must be"),
        (["bench-sweep", "--model", llava, "--count", "4611686018427387904"], "is out of range"),
        (["bench-sweep", "--model", llava, "--mode", "fast"], "--mode must be"),
    ]

    @Test("out-of-range numbers are usage errors", arguments: cases)
    func outOfRange(arguments: [String], fragment: String) throws {
        let folder = try TemporaryFolder()
        let r = try CLI.refuses(arguments, in: folder.url, fragment)
        #expect(try folder.snapshot().isEmpty, "\(arguments) wrote something")
        _ = r
    }
}
