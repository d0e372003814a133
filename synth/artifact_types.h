// synth produces the artifact model (common/artifact/model.h); its stages name those types
// without the namespace.
#pragma once
#include "common/artifact/model.h"

namespace sie::synth {
using artifact::CriticalSpan;
using artifact::DataInitializer;
using artifact::Location;
using artifact::MemOperand;
using artifact::SafeSpan;
using artifact::SafeSpanHow;
using artifact::SpanKind;
using artifact::SpanKindName;
using artifact::SynthesizedConst;
using artifact::TargetBinary;
using artifact::VarLocation;
}  // namespace sie::synth
