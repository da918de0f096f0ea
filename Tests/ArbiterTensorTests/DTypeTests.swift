// bf16 and f16 conversions against bit-level references; widening from unaligned bytes.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("DType conversions")
struct DTypeTests {
    @Test("bfloat16ToFloat decodes all 65536 patterns like the field-by-field reference")
    func bfloat16DecodeAll() {
        var mismatches = 0
        for bits in UInt16.min...UInt16.max {
            let value = bfloat16ToFloat(bits), reference = ReferenceKernels.bfloat16Value(bits)
            if reference.isNaN {
                if !(value.isNaN && value.sign == (bits >> 15 == 1 ? .minus : .plus)) { mismatches += 1 }
            } else if value.bitPattern != Float(reference).bitPattern {
                mismatches += 1
            }
            // bf16 is the high half of f32: the decoded value has exactly these high bits.
            if value.bitPattern >> 16 != UInt32(bits) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("float16ToFloat decodes all 65536 patterns like the reference and like Swift's Float16")
    func float16DecodeAll() {
        var mismatches: [UInt16] = []
        for bits in UInt16.min...UInt16.max {
            let value = float16ToFloat(bits), reference = ReferenceKernels.float16Value(bits)
            let swift = Float(Float16(bitPattern: bits))
            let sign: FloatingPointSign = bits >> 15 == 1 ? .minus : .plus
            if reference.isNaN {
                if !(value.isNaN && swift.isNaN && value.sign == sign) { mismatches.append(bits) }
            } else if value.bitPattern != Float(reference).bitPattern || value.bitPattern != swift.bitPattern {
                mismatches.append(bits)
            }
        }
        let firstMismatches = mismatches.prefix(5).map { String($0, radix: 16) }
        #expect(mismatches.isEmpty, "first mismatching patterns: \(firstMismatches)")
    }

    @Test("floatToBFloat16 rounds random float32 bit patterns like the case-by-case reference")
    func bfloat16EncodeRandom() async {
        await propertyCheck(count: 50, input: generator { rng in (0..<1000).map { _ in UInt32.random(in: .min ... .max, using: &rng) } }) { patterns in
            for bits in patterns {
                let value = Float(bitPattern: bits)
                let encoded = floatToBFloat16(value), reference = ReferenceKernels.bfloat16Bits(value)
                if value.isNaN {
                    #expect(bfloat16ToFloat(encoded).isNaN && encoded & 0x0040 != 0 && encoded >> 15 == UInt16(bits >> 31),
                            "NaN 0x\(String(bits, radix: 16)) → 0x\(String(encoded, radix: 16))")
                } else {
                    #expect(encoded == reference, "0x\(String(bits, radix: 16)) → 0x\(String(encoded, radix: 16)), want 0x\(String(reference, radix: 16))")
                }
            }
        }
    }

    @Test("floatToBFloat16 ties go to even, and edges round as IEEE says")
    func bfloat16EncodePinned() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_8000, 0x3F80, "1 + 2⁻⁸: tie, kept half even → down"),
            (0x3F81_8000, 0x3F82, "tie with odd kept half → up"),
            (0x3F80_8001, 0x3F81, "just above the tie → up"),
            (0x3F80_7FFF, 0x3F80, "just below the tie → down"),
            (0xBF81_8000, 0xBF82, "negative tie, odd → away from zero"),
            (0x7F7F_FFFF, 0x7F80, "largest float rounds to +inf"),
            (0x7F7F_7FFF, 0x7F7F, "below the last tie stays finite"),
            (0x7F80_0000, 0x7F80, "+inf"),
            (0xFF80_0000, 0xFF80, "-inf"),
            (0x0000_0001, 0x0000, "smallest subnormal → +0"),
            (0x0000_8000, 0x0000, "subnormal tie, even → 0"),
            (0x0001_8000, 0x0002, "subnormal tie, odd → up"),
            (0x8000_0000, 0x8000, "-0 keeps its sign"),
        ]
        for (bits, expected, why) in cases {
            #expect(floatToBFloat16(Float(bitPattern: bits)) == expected, "\(why)")
            #expect(ReferenceKernels.bfloat16Bits(Float(bitPattern: bits)) == expected, "reference: \(why)")
        }
        // NaNs stay NaN (quiet), including a signalling NaN whose payload is only in the dropped half.
        for bits: UInt32 in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF] {
            let encoded = floatToBFloat16(Float(bitPattern: bits))
            #expect(bfloat16ToFloat(encoded).isNaN && encoded & 0x0040 != 0, "NaN 0x\(String(bits, radix: 16))")
        }
    }

    @Test("every non-NaN bf16 value survives bf16 → f32 → bf16")
    func bfloat16RoundTrip() {
        var failures = 0
        for bits in UInt16.min...UInt16.max where !bfloat16ToFloat(bits).isNaN {
            if floatToBFloat16(bfloat16ToFloat(bits)) != bits { failures += 1 }
        }
        #expect(failures == 0)
    }

    struct WidenCase: Sendable, CustomStringConvertible {
        let dtype: DType, values: [Float], offset: Int, rows: Int
        var description: String { "\(dtype.rawValue) × \(values.count) at byte offset \(offset)" }
    }

    @Test("widenToFloat, toTensor and widenRows read unaligned bytes of every dtype")
    func widening() async {
        await propertyCheck(count: 60, input: generator { rng in
            let rows = pick([1, 2, 3, 7], &rng), columns = pick(testSizes, &rng)
            return WidenCase(dtype: pick(DType.allCases, &rng),
                             values: randomTensor([rows * columns], in: -1e4...1e4, &rng).scalars,
                             offset: pick([0, 1, 2, 3], &rng), rows: rows)
        }) { c in
            let columns = c.values.count / c.rows
            let (stored, held) = storedTensor("t", c.values, shape: [c.rows, columns], dtype: c.dtype, offset: c.offset)
            let whole = stored.toTensor().scalars.elementsEqual(held, by: sameFloat)
            #expect(whole, "toTensor \(c)")
            #expect(stored.toTensor().shape == [c.rows, columns])
            let start = c.rows / 2
            var block = [Float](repeating: .nan, count: (c.rows - start) * columns)
            block.withUnsafeMutableBufferPointer { stored.widenRows(start..<c.rows, into: $0.baseAddress!) }
            let rows = block.elementsEqual(held[(start * columns)...], by: sameFloat)
            #expect(rows, "widenRows \(start)..<\(c.rows) of \(c)")
        }
    }

    @Test("a StoredTensor built from a Tensor is aligned F32 and reads back unchanged")
    func storedFromTensor() {
        let t = Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .infinity, 0, -0.0])
        let stored = StoredTensor(name: "derived", t)
        #expect(stored.dtype == .float32 && stored.shape == [2, 3] && stored.rows == 2 && stored.columns == 3)
        #expect(stored.float32Pointer != nil)
        let back = stored.toTensor()
        let same = back.scalars.elementsEqual(t.scalars, by: sameFloat)
        #expect(same && back.shape == t.shape)
    }

    @Test("dtype names and sizes follow safetensors")
    func names() {
        #expect(DType(rawValue: "BF16") == .bfloat16 && DType(rawValue: "F16") == .float16 && DType(rawValue: "F32") == .float32)
        let sizes = DType.allCases.map(\.byteSize)
        #expect(sizes == [4, 2, 2])
    }
}
