// Every number typed on the command line is range-checked at parse time: a clean usage error (exit 64), never
// a crash, a hang or an allocation of what the number asks for.
import Foundation
import Testing

@Suite("CLI option validation")
struct OptionValidationTests {
    static let llama = Repository.model("tiny-llama").path
    static let llava = Repository.model("tiny-llava").path
    static let generate = ["data", "generate", "--count", "2", "--seed", "1", "--out", "x"]

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
        (["bench-gemm", "--weights", "f16"], "--weights must be f32 or bf16, got 'f16'"),
        (["bench-gemm", "--compute", "fp8"], "--compute must be f32 or bf16, got 'fp8'"),
        (["bench-gemm", "--in", "0"], "--in 0 is out of range"),
        (["bench-gemm", "--out", "2000000"], "--out 2000000 is out of range"),
        (["bench-gemm", "--rows=-1"], "--rows -1 is out of range"),
        (["bench-gemm", "--repeats", "0"], "--repeats 0 is out of range"),
        (["bench-gemm", "--in", "65536", "--out", "65536"], "must stay ≤ 268435456 elements"),
        // Every option's message names the option, also for what only the model can check.
        (["run", "--model", llama, "--ids", "1,2", "--block-heads", "1.0,,2.0"], "'1.0,,2.0' has an empty entry"),
        (["run", "--model", llama, "--ids", "1,2", "--amplify-heads", "1.0x2,"], "--amplify-heads '1.0x2,' has an"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "image->last@0"], "--knockout 'image->last@0'"),
        (["run", "--model", llama, "--ids", "1,2", "--knockout", "0->last@99"], "--knockout '0->last@99': "),
        (["run", "--model", llama, "--ids", "1,2", "--block-heads", "0.9"], "--block-heads '0.9': "),
        (["run", "--model", llama, "--ids", "1,2", "--amplify-heads", "9.0x2"], "--amplify-heads '9.0x2': "),
        (["run", "--model", llama, "--ids", "1,2", "--scale-mlp", "99x0"], "--scale-mlp '99x0': "),
        (["run", "--model", llama, "--ids", "1,2", "--scale-mlp", "x"], "--scale-mlp 'x': "),
        (["run", "--model", llama, "--ids", "1,2", "--cache", "blocks.99.hook_x"], "--cache 'blocks.99.hook_x'"),
        (["run", "--model", llama, "--ids", "1,512"], "--ids: token id 512 at position 1 is outside the vocabulary"),
        (["run", "--model", llama, "--ids=-3"], "--ids: token id -3 at position 0"),
        (["run", "--model", "", "--ids", "1"], "--model is empty"),
        (["run", "--model", llava, "--prompt", "q", "--image", ""], "--image is empty"),
        (["run", "--model", llava, "--prompt", "q", "--image", llava], "--image \(llava) is a folder"),
        (["run", "--model", llava, "--prompt", "q", "--image", "/nonexistent/x.png"], "--image /nonexistent/x.png: "),
        (["run", "--model", llava, "--prompt", "q", "--layout", ""], "--layout is empty"),
        (["run", "--model", llava, "--prompt", "q", "--layout", "vicuna-9"], "--layout vicuna-9: "),
        (["run", "--model", llava, "--prompt", "q", "--layout", "/tmp/"], "not a regular file: it is a folder"),
        (["eval", "--model", llava, "--data", ""], "--data is empty"),
        (["verify", "--model", ""], "--model is empty"),
        (["hooks", "--model", ""], "--model is empty"),
        (["compare", "--golden", ""], "--golden is empty"),
        (["compare", "--models", " "], "--models is empty"),
        (["data", "check", "--mc2", "/tmp"], "--mc2 /tmp is a folder"),
        (["data", "check", "--data", "x", "--tokenizer", ""], "--tokenizer is empty"),
        (generate + ["--image-size", "15"], "--image-size: "),
        (generate + ["--noisy-percent", "101"], "--noisy-percent: "),
        (generate + ["--mix", "conflict=0"], "--mix 'conflict=0': "),
        (generate + ["--mix", "puzzle=1"], "--mix 'puzzle=1': "),
        (generate + ["--tasks", ",,"], "--tasks ',,' selects no task"),
        (generate + ["--tasks", "texture"], "--tasks: unknown task"),
    ]

    @Test("out-of-range numbers and malformed options are refused, naming the option", arguments: cases)
    func outOfRange(arguments: [String], fragment: String) throws {
        let folder = try TemporaryFolder()
        let r = try CLI.refuses(arguments, in: folder.url, fragment)
        #expect(try folder.snapshot().isEmpty, "\(arguments) wrote something")
        _ = r
    }

    @Test("an image the processor cannot take is reported with the --image path")
    func imageErrorsNameThePath() throws {
        let folder = try TemporaryFolder()
        let png = folder.url.appendingPathComponent("strip.png")
        try Data(FuzzPNG.make(width: 4096, height: 1)).write(to: png)
        for model in [Self.llava, Repository.model("tiny-qwen2-vl").path] {
            try CLI.refuses(["run", "--model", model, "--prompt", "q", "--image", png.path], in: folder.url,
                            "--image \(png.path): ")
        }
    }
}
