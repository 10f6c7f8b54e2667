import { describe, expect, it } from "vitest";
import { mapDevice } from "../../../src/load/loader.js";

const gpus = ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5", "cuda:6", "cuda:7"];

describe("mapDevice", () => {
  it("a tensor saved on any GPU goes to the loader's own GPU", () => {
    expect(mapDevice("cuda:5", gpus, 3, new Map())).toBe("cuda:3");
    expect(mapDevice("cuda:0", gpus, 3, new Map())).toBe("cuda:3");
  });

  it("a loader that sees one GPU (CUDA_VISIBLE_DEVICES) gets that GPU", () => {
    expect(mapDevice("cuda:5", ["cuda:0"], 3, new Map())).toBe("cuda:0");
  });

  it("a CPU-only loader gets cpu for GPU tensors; cpu stays cpu", () => {
    expect(mapDevice("cuda:5", [], 0, new Map())).toBe("cpu");
    expect(mapDevice("cpu", gpus, 2, new Map())).toBe("cpu");
    expect(mapDevice("", gpus, 2, new Map())).toBe("cpu");
  });

  it("an explicit mapping wins, and '*' maps every device", () => {
    expect(mapDevice("cuda:5", gpus, 3, new Map([["cuda:5", "cuda:1"]]))).toBe("cuda:1");
    expect(mapDevice("cuda:5", gpus, 3, new Map([["*", "cpu"]]))).toBe("cpu");
    expect(mapDevice("cpu", gpus, 3, new Map([["cpu", "cuda:0"]]))).toBe("cuda:0");
  });

  it("other accelerator types map by type", () => {
    expect(mapDevice("xpu:1", ["xpu:0", "xpu:1", "cuda:0"], 2, new Map())).toBe("xpu:0");
    expect(mapDevice("xpu:1", gpus, 2, new Map())).toBe("cpu");
  });

  it("devices named like Object's own properties are plain names", () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(mapDevice(name, gpus, 1, new Map())).toBe("cpu");
      expect(mapDevice(`${name}:0`, gpus, 1, new Map())).toBe("cpu");
      expect(mapDevice("cuda:0", gpus, 1, new Map([[name, "cpu"]]))).toBe("cuda:1");
    }
  });
});
