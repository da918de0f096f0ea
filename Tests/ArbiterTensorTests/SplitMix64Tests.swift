// SplitMix64 was written seven times: ArbiterData's public one, test copies in four test targets, two inline in
// the HDF5 tests. All but ArbiterModelsTests' SeededGenerator are now this one type in ArbiterTensor; that copy's
// stream is pinned here too. The values below were printed by the former copies before they were removed, so
// every stream the suites, the datasets and the goldens draw stays bit-identical.
import ArbiterTensor
import Testing

@Suite("SplitMix64")
struct SplitMix64Tests {
    /// The first outputs for seed 42, as ArbiterData's SplitMix64 and the test copies in ArbiterTensorTests
    /// (`SplitMix64`), ArbiterFormatsTests (`SplitMix64`, the HDF5 mutation stream) and ArbiterTokenizersTests
    /// (`SeededGenerator`) all gave them.
    static let seed42: [UInt64] = [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103, 0x4752_6757_130F_9F52,
                                   0x581C_E1FF_0E4A_E394, 0x09BC_585A_2448_23F2]

    @Test("the stream of a seed is the one every former copy gave")
    func stream() {
        var rng = SplitMix64(seed: 42)
        #expect((0..<5).map { _ in rng.next() } == Self.seed42)
    }

    @Test("mix is the first output of a generator seeded with the value")
    func mix() {
        #expect(SplitMix64.mix(0) == 0xE220_A839_7B1D_CDAF)
        #expect(SplitMix64.mix(42) == Self.seed42[0])
    }

    @Test("the HDF5 garbage bytes are the low bytes of the stream")
    func garbageBytes() {
        // HDF5MalformedCase.garbage(seed: 42, count: 8, prefix: [1, 2]) before the merge.
        var rng = SplitMix64(seed: 42)
        let bytes: [UInt8] = [1, 2] + (0..<6).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        #expect(bytes == [1, 2, 149, 3, 82, 148, 242, 6])
    }

    @Test("ArbiterModelsTests' SeededGenerator(seed:) is the stream with its first output skipped")
    func modelsTestsVariant() {
        // That copy starts at `seed &+ 0x9E37_79B9_7F4A_7C15`, one Weyl step ahead; its first four outputs for 42.
        var rng = SplitMix64(seed: 42)
        _ = rng.next()
        #expect((0..<4).map { _ in rng.next() } == Array(Self.seed42.dropFirst()))
        var offset = SplitMix64(seed: 42 &+ 0x9E37_79B9_7F4A_7C15)
        #expect((0..<4).map { _ in offset.next() } == Array(Self.seed42.dropFirst()))
    }
}
