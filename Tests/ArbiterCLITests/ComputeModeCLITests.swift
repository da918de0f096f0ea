// bf16 compute from the shell: ARBITER_COMPUTE is read by every command that loads a model (a bad value is a
// clean refusal naming it), and `bench-gemm` runs the path the CPU has.
import Foundation
import Testing

@Suite("CLI compute mode")
struct ComputeModeCLITests {
    /// No address-space limit worth the name: only the environment matters here.
    static func environment(_ value: String) -> ResourceLimits {
        ResourceLimits(addressSpace: 1 << 40, environment: ["ARBITER_COMPUTE": value])
    }

    @Test("a bad ARBITER_COMPUTE is refused, naming the variable and the allowed values")
    func badValueRefused() throws {
        let r = try CLI.execute(["run", "--model", Repository.model("tiny-llama").path, "--ids", "1,2"],
                                limits: Self.environment("fp16"))
        #expect(r.status != 0 && !r.signalled, "\(r)")
        #expect(r.stderr.contains("ARBITER_COMPUTE=fp16") && r.stderr.contains("f32 or bf16"), "\(r)")
    }

    @Test("ARBITER_COMPUTE=bf16 runs a model: the same top token as f32, with other logits (bf16 weights)")
    func bf16Runs() throws {
        let arguments = ["run", "--model", Repository.model("tiny-llama").path, "--ids", "1,2,3,4", "--top", "1"]
        let f32 = try CLI.execute(arguments, limits: Self.environment("f32"))
        let bf16 = try CLI.execute(arguments, limits: Self.environment("bf16"))
        #expect(f32.status == 0 && bf16.status == 0, "f32: \(f32); bf16: \(bf16)")
        // "next-token logits at position 3: 415 (3.9283)": the id before " (", the value inside.
        func top(_ text: String) -> (id: String, logit: String)? {
            guard let colon = text.range(of: ": "),
                  let open = text.range(of: " (", range: colon.upperBound..<text.endIndex),
                  let close = text.range(of: ")", range: open.upperBound..<text.endIndex) else { return nil }
            return (String(text[colon.upperBound..<open.lowerBound]), String(text[open.upperBound..<close.lowerBound]))
        }
        let a = try #require(top(f32.stdout), "\(f32)"), b = try #require(top(bf16.stdout), "\(bf16)")
        #expect(a.id == b.id, "top token \(a.id) in f32, \(b.id) in bf16")
        #expect(a.logit != b.logit, "the bf16 run printed f32's logit \(a.logit): were the weights rounded?")
    }

    @Test("bench-gemm prints the path it ran and a positive rate")
    func benchGemm() throws {
        let r = try CLI.run(["bench-gemm", "--in", "33", "--out", "17", "--rows", "3", "--weights", "bf16",
                             "--compute", "bf16", "--repeats", "1"])
        #expect(r.status == 0, "\(r)")
        let line = try #require(r.stdout.split(separator: "\n").last { $0.hasPrefix("{") }, "\(r)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let path = json["path"] as? String
        #expect(path == "avx512bf16" || path == "widen+sgemm", "\(json)")
        #expect((json["gflops_median"] as? Double ?? 0) > 0, "\(json)")
    }
}
