// The claims of "Instruction Anchors" (arXiv 2602.03677) as executable hypotheses: one readable, versioned
// specification. Each claim names the paper sentence it encodes (paraphrased), the statistic (computed in
// ClaimStatistics.swift under the same id), the thresholds with their source, the control it must beat, and
// the splits and seeds. Every claim has a full threshold and a weaker directional one.

public struct ClaimSpecification: Sendable, Codable, Equatable {
    public let id: String
    public let title: String
    /// The paper's sentence, paraphrased.
    public let paper: String
    /// What is measured (the statistic's definition).
    public let statistic: String
    /// The full threshold, in words, and where it comes from.
    public let threshold: String
    public let thresholdSource: String
    /// The weaker, directional threshold.
    public let directional: String
    /// The control the statistic must beat.
    public let control: String
    /// Which split the statistic is computed on.
    public let split: String
}

public enum Claims {
    /// Version of this specification; results and golden verdicts record it.
    public static let version = 2

    /// Numeric thresholds, named so that a claim's test, statistic and threshold are one hop apart.
    public enum Threshold {
        /// anchors: |strongest cue→instruction shift| ≥ k × |strongest direct cue→last shift|.
        public static let anchorsRatio = 2.0
        /// shallow non-selective transfer: |instruction selectivity| in the transfer band.
        public static let nonSelectiveSI = 0.10
        public static let nonSelectiveSIDirectional = 0.20
        /// … and the two targets' band shifts alike: their difference's 95% CI within ± this × their mean
        /// magnitude (version 2: replaces "both negative"; an effect 4.5× larger on one target is not alike).
        public static let nonSelectiveEquivalence = 0.5
        /// deep selective arbitration: logit-lens agreement in the deepest quarter (paper: > 95%).
        public static let deepAgreement = 0.95
        /// … and the shallowest quarter stays at most this.
        public static let shallowAgreementMax = 0.80
        /// 5% heads, blocking: relative MFR drop (paper v1: ~60%).
        public static let blockingDrop = 0.60
        /// 5% heads, amplification: share of failed held-out samples fixed (paper v1: ~60%).
        public static let amplificationFix = 0.60
        /// specificity: change of consistent-sample accuracy, in accuracy units (5 points).
        public static let specificityMaxChange = 0.05
        public static let specificityMaxChangeDirectional = 0.10
        /// Random head sets compared against: their 95th percentile.
        public static let randomPercentile = 0.95
    }

    public static let all: [ClaimSpecification] = [
        ClaimSpecification(
            id: "anchors", title: "Instruction tokens are the structural anchors of arbitration",
            paper: "Instruction tokens function as structural anchors for modality arbitration: cues reach the answer through them.",
            statistic: "strongest (most negative) per-layer knockout shift I(ℓ) of the cue→instruction edges (cues→instruction, i.e. image and context together as in the paper's figures; context→instruction; image→instruction; either target) vs the largest |I(ℓ)| of the direct cue→last edges (cues→last, context→last, image→last)",
            threshold: "strongest cue→instruction shift < 0 with CI below 0, and its magnitude ≥ \(Threshold.anchorsRatio)× the strongest direct cue→last magnitude",
            thresholdSource: "our choice; the paper's Qwen2.5-VL figures give −0.57/−0.81 vs ≈0 and −0.09 (ratio > 6)",
            directional: "strongest cue→instruction shift < 0 and larger in magnitude than the strongest direct cue→last shift",
            control: "direct cue→last knockout",
            split: "all conflict items (calibration + held-out); bootstrap seed in results"),
        ClaimSpecification(
            id: "shallow-nonselective", title: "Shallow attention moves cues into the instruction tokens non-selectively",
            paper: "Shallow attention layers perform non-selective information transfer, routing multimodal cues to the instruction anchors as a latent buffer.",
            statistic: "on the joint cues→instruction edge, in its transfer band (layers where either target's shift is ≥ 50% of the peak): each target's mean shift, the difference of the two with its 95% CI, and the mean |selectivity index| of instruction-token attention to image vs context",
            threshold: "both targets' band shifts < 0 with CIs below 0; their difference's CI within ±\(Threshold.nonSelectiveEquivalence) × their mean magnitude (equivalence); mean |SI| in the band ≤ \(Threshold.nonSelectiveSI); the band in the first half of the layers",
            thresholdSource: "our choice (the paper gives no number for selectivity); the equivalence margin: an effect twice as large on one target is not 'alike'",
            directional: "the peak's CI below 0, both targets' band shifts < 0, |difference| within the margin, and mean |SI| ≤ \(Threshold.nonSelectiveSIDirectional)",
            control: "the other instruction target (non-selective ⇔ both hurt alike, attention blind to the instruction)",
            split: "all conflict items"),
        ClaimSpecification(
            id: "deep-selective", title: "Deep attention resolves the competition selectively",
            paper: "Modality competition is resolved within deep attention layers guided by the instruction intent; deep-layer decisions at the instruction anchors agree with the final answer.",
            statistic: "logit-lens decision agreement with the final answer (LDAR) at the instruction anchors (mean following score over the instruction tokens), mean over the deepest quarter of layers vs the shallowest quarter",
            threshold: "deep LDAR ≥ \(Threshold.deepAgreement), shallow LDAR ≤ \(Threshold.shallowAgreementMax), the rise (deep − shallow) with its 95% CI above 0, and the anchors' readout carries a decision at all (some layer's mean |s| > 1e-3)",
            thresholdSource: "paper (> 95% agreement in deep layers); shallow bound our choice",
            directional: "deep LDAR > shallow LDAR with the rise's CI above 0",
            control: "shallow layers",
            split: "all conflict items"),
        ClaimSpecification(
            id: "mlp-inertia", title: "MLP layers show semantic inertia",
            paper: "MLP layers exhibit semantic inertia, acting as an adversarial force against the instructed answer.",
            statistic: "total direct logit attribution of the MLP outputs of the deep half of the layers to the following score s",
            threshold: "negative with 95% CI excluding 0",
            thresholdSource: "paper (sign); CI our choice",
            directional: "negative",
            control: "zero",
            split: "all conflict items"),
        ClaimSpecification(
            id: "heads-blocking", title: "Blocking 5% of heads cuts modality following",
            paper: "Blocking a sparse set of about 5% of attention heads decreases the modality-following ratio by about 60%.",
            statistic: "relative MFR drop (MFR_base − MFR_blocked)/MFR_base on held-out conflict items when the top 5% heads (ranked by causal single-head ablation on the calibration split) are zeroed",
            threshold: "drop ≥ \(Threshold.blockingDrop) and above the 95th percentile of ≥ 20 random 5% head sets",
            thresholdSource: "paper v1 abstract (~60%)",
            directional: "drop > 0 and above the random sets' 95th percentile",
            control: "≥ 20 random head sets of the same size (seeded)",
            split: "heads ranked on calibration, measured on held-out"),
        ClaimSpecification(
            id: "heads-amplification", title: "Amplifying those heads fixes failures",
            paper: "Targeted amplification of the same heads on failed samples increases the modality-following ratio by about 60%.",
            statistic: "fraction of failed held-out conflict items that follow after the top 5% heads are scaled by α (α chosen on calibration failures from a grid)",
            threshold: "≥ \(Threshold.amplificationFix) and above the 95th percentile of random head sets",
            thresholdSource: "paper v1 abstract (~60%)",
            directional: "above the random sets' 95th percentile and > 0",
            control: "the same random head sets, same α",
            split: "α on calibration, measured on held-out"),
        ClaimSpecification(
            id: "specificity", title: "General ability is kept",
            paper: "Manipulating the critical heads changes modality following while general ability is kept.",
            statistic: "|consistent-item accuracy after blocking the top 5% heads − before|",
            threshold: "≤ \(Threshold.specificityMaxChange) (5 points)",
            thresholdSource: "our choice, from the paper's 'general ability is kept'",
            directional: "≤ \(Threshold.specificityMaxChangeDirectional)",
            control: "the unblocked model",
            split: "held-out consistent items"),
    ]

    public static func specification(_ id: String) -> ClaimSpecification? { all.first { $0.id == id } }
}

/// The thresholds the verdicts are computed with: `standard` holds the specification's values
/// (`Claims.Threshold`); other values exist so that tests can check that verdicts are monotone in them.
public struct ClaimThresholds: Sendable, Equatable, CustomStringConvertible {
    public var anchorsRatio = Claims.Threshold.anchorsRatio
    public var nonSelectiveSI = Claims.Threshold.nonSelectiveSI
    public var nonSelectiveSIDirectional = Claims.Threshold.nonSelectiveSIDirectional
    public var nonSelectiveEquivalence = Claims.Threshold.nonSelectiveEquivalence
    public var deepAgreement = Claims.Threshold.deepAgreement
    public var shallowAgreementMax = Claims.Threshold.shallowAgreementMax
    public var blockingDrop = Claims.Threshold.blockingDrop
    public var amplificationFix = Claims.Threshold.amplificationFix
    public var specificityMaxChange = Claims.Threshold.specificityMaxChange
    public var specificityMaxChangeDirectional = Claims.Threshold.specificityMaxChangeDirectional
    public var randomPercentile = Claims.Threshold.randomPercentile

    public init() {}

    /// The specification's thresholds.
    public static let standard = ClaimThresholds()

    public var description: String {
        "anchorsRatio \(anchorsRatio), nonSelectiveSI \(nonSelectiveSI)/\(nonSelectiveSIDirectional), "
            + "nonSelectiveEquivalence \(nonSelectiveEquivalence), "
            + "deepAgreement \(deepAgreement), shallowAgreementMax \(shallowAgreementMax), "
            + "blockingDrop \(blockingDrop), amplificationFix \(amplificationFix), "
            + "specificityMaxChange \(specificityMaxChange)/\(specificityMaxChangeDirectional), "
            + "randomPercentile \(randomPercentile)"
    }
}
