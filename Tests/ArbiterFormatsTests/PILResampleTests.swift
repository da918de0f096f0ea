// Pillow's resampling (PILResample), which the families' image processors resize with: properties of the
// filters. The processors' pixel values against transformers are tested with their families (ArbiterModelsTests).
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

@Suite("Pillow resampling")
struct PILResampleTests {
    @Test("property: resizing a flat image keeps it flat, any size and filter")
    func flatStaysFlat() async {
        await propertyCheck(count: 40, input: Gen.int(in: 1...40), Gen.int(in: 1...40), Gen.int(in: 1...40), Gen.int(in: 1...40),
                            Gen.int(in: 0...255), Gen.int(in: 2...3)) { w, h, ow, oh, v, f in
            let image = RGBImage(width: w, height: h, red: UInt8(v), green: UInt8(255 - v), blue: UInt8(v / 2))
            let out = PILResample.resize(image, width: ow, height: oh, filter: PILResampleFilter(rawValue: f)!)
            #expect(out.width == ow && out.height == oh)
            #expect(out == RGBImage(width: ow, height: oh, red: UInt8(v), green: UInt8(255 - v), blue: UInt8(v / 2)))
        }
    }

    @Test("bicubic coefficients of each output position sum to 1.0 in fixed point (±rounding)")
    func coefficientsNormalized() {
        for (inSize, outSize) in [(10, 3), (3, 10), (300, 17), (17, 17), (1, 5), (5, 1)] {
            let k = PILResample.coefficients(inSize: inSize, outSize: outSize, filter: .bicubic)
            for xx in 0..<outSize {
                let sum = (0..<k.ksize).reduce(0) { $0 + Int(k.weights[xx * k.ksize + $1]) }
                #expect(abs(sum - (1 << 22)) <= k.ksize, "\(inSize)→\(outSize) position \(xx): sum \(sum)")
                #expect(k.first[xx] >= 0 && k.first[xx] + k.count[xx] <= inSize)
            }
        }
    }
}
